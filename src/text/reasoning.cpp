#include "text/reasoning.h"

#include <algorithm>

namespace whale {

namespace {
// Length of the longest suffix of `s` that is a proper prefix of `tag`.
size_t partial_tag_suffix(std::string_view s, std::string_view tag) {
  for (size_t n = std::min(s.size(), tag.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == tag.substr(0, n)) return n;
  return 0;
}
}  // namespace

bool prompt_opens_reasoning(std::string_view prompt, std::string_view open_tag) {
  const size_t end = prompt.find_last_not_of(" \t\r\n");
  if (end == std::string_view::npos || open_tag.empty()) return false;
  return prompt.substr(0, end + 1).ends_with(open_tag);
}

ReasoningSplitter::ReasoningSplitter(bool starts_in_reasoning, std::string open_tag,
                                     std::string close_tag)
    : open_(std::move(open_tag)),
      close_(std::move(close_tag)),
      state_(starts_in_reasoning ? State::Reasoning : State::Start),
      skip_newlines_(starts_in_reasoning) {}

void ReasoningSplitter::emit(std::string_view s, ReasoningDelta& d) {
  if (skip_newlines_) {
    size_t k = s.find_first_not_of("\r\n");
    if (k == std::string_view::npos) return;
    s.remove_prefix(k);
    skip_newlines_ = false;
  }
  (state_ == State::Reasoning ? d.reasoning : d.content).append(s);
}

ReasoningDelta ReasoningSplitter::feed(std::string_view text) {
  ReasoningDelta d;
  std::string buf = std::move(held_);
  held_.clear();
  buf.append(text);
  std::string_view rest(buf);
  while (!rest.empty()) {
    if (state_ == State::Content) {
      emit(rest, d);
      break;
    }
    if (state_ == State::Start) {
      // Before anything visible, an opening tag may come (after optional whitespace).
      size_t k = rest.find_first_not_of(" \t\r\n");
      if (k == std::string_view::npos) {
        held_.assign(rest);
        break;
      }
      std::string_view tail = rest.substr(k);
      if (tail.size() < open_.size() && open_.compare(0, tail.size(), tail) == 0) {
        held_.assign(rest);  // could still become <think>
        break;
      }
      if (tail.substr(0, open_.size()) == open_) {
        state_ = State::Reasoning;
        skip_newlines_ = true;
        rest = tail.substr(open_.size());
      } else {
        state_ = State::Content;
      }
      continue;
    }
    // Reasoning: look for the closing tag.
    size_t at = rest.find(close_);
    if (at != std::string_view::npos) {
      emit(rest.substr(0, at), d);
      state_ = State::Content;
      skip_newlines_ = true;
      rest = rest.substr(at + close_.size());
      continue;
    }
    size_t hold = partial_tag_suffix(rest, close_);
    emit(rest.substr(0, rest.size() - hold), d);
    held_.assign(rest.substr(rest.size() - hold));
    break;
  }
  return d;
}

ReasoningDelta ReasoningSplitter::finish() {
  ReasoningDelta d;
  if (state_ == State::Start) state_ = State::Content;
  std::string rest = std::move(held_);
  held_.clear();
  emit(rest, d);
  return d;
}

}  // namespace whale
