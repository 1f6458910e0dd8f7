// Streaming split of generated text into reasoning and content (DeepSeek-R1 style):
//   [<think>] reasoning </think> content
// R1's chat template ends the prompt inside the reasoning ("<｜Assistant｜><think>\n"), so a
// splitter for it starts in reasoning; other models emit <think> themselves. Tags may arrive
// split across tokens: a trailing piece that could begin a tag is held back until the next
// chunk decides. Only the first reasoning block is split out; later tags are plain content.
// Newlines right after a tag are dropped (the templates put "\n" / "\n\n" there).
#pragma once

#include <string>
#include <string_view>

namespace whale {

// True when a rendered prompt ends (trailing whitespace aside) with the open tag: R1's template
// ends it with "<think>\n", so generation starts inside the reasoning.
bool prompt_opens_reasoning(std::string_view prompt, std::string_view open_tag = "<think>");

struct ReasoningDelta {
  std::string reasoning;
  std::string content;
};

class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(bool starts_in_reasoning = false,
                             std::string open_tag = "<think>", std::string close_tag = "</think>");
  ReasoningDelta feed(std::string_view text);
  ReasoningDelta finish();  // end of generation: release anything held back
  bool in_reasoning() const { return state_ == State::Reasoning; }

 private:
  enum class State { Start, Reasoning, Content };
  void emit(std::string_view s, ReasoningDelta& d);
  std::string open_, close_;
  State state_;
  bool skip_newlines_ = false;  // just after a tag
  std::string held_;            // a possible tag prefix waiting for more text
};

}  // namespace whale
