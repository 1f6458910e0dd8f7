// Terminal presentation of a streamed answer: reasoning dimmed (or hidden), content plain.
#pragma once

#include <atomic>
#include <string>

#include "runtime/generate.h"
#include "text/chat.h"

namespace whale::app {

struct ChatUiOptions {
  bool hide_reasoning = false;
  bool color = false;  // ANSI dim for reasoning (on a terminal)
};

struct Answer {
  std::string reasoning, content;
  GenerateResult result;
};

// Generates one assistant turn for `prompt_text` (already rendered by the template) and streams
// it to stdout. Reasoning starts open when the prompt ends inside <think>.
Answer stream_answer(Session& session, const TextAssets& text, const std::string& prompt_text,
                     const GenerateOptions& opts, const ChatUiOptions& ui,
                     bool add_special_tokens = false);

// Ctrl-C handling: while an answer streams, SIGINT cancels it; otherwise it ends the program.
std::atomic<bool>& interrupt_flag();
void install_interrupt_handler();

}  // namespace whale::app
