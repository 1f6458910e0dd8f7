// OpenAI `stop` sequences on streamed text: text is released only when no stop string can still
// begin in it, so a partial match is never streamed to the client; on a match, the text before
// it is released and everything after is dropped (the caller then cancels the generation).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace whale::server {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);
  // Appends `text`; returns what is now safe to emit. After a match, returns "" forever.
  std::string feed(std::string_view text);
  // End of generation without a match: releases the held-back tail.
  std::string finish();
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace whale::server
