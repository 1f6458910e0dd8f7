// The OpenAI response side: chat.completion, chat.completion.chunk, text_completion objects and
// their usage block, built field by field in the order OpenAI sends them.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "server/generation_job.h"

namespace whale::server {

using ojson = nlohmann::ordered_json;

// Identity shared by every object of one response.
struct ResponseId {
  std::string id;     // "chatcmpl-…" / "cmpl-…"
  int64_t created = 0;  // unix seconds
  std::string model;
  static ResponseId make(const char* prefix, const std::string& model);
};

ojson usage_json(const JobUsage& u);

// Non-streaming bodies.
ojson chat_completion(const ResponseId& rid, const std::string& reasoning, const std::string& content,
                      const std::string& finish_reason, const JobUsage& u);
ojson text_completion(const ResponseId& rid, const std::string& text, const std::string& finish_reason,
                      const JobUsage& u);

// Streaming chunks. `usage_null` adds "usage": null (OpenAI does when include_usage is set).
ojson chat_chunk_role(const ResponseId& rid, bool usage_null);
ojson chat_chunk_delta(const ResponseId& rid, const TextDelta& d, bool usage_null);
ojson chat_chunk_finish(const ResponseId& rid, const std::string& finish_reason, bool usage_null);
ojson chat_chunk_usage(const ResponseId& rid, const JobUsage& u);  // choices: []
ojson text_chunk(const ResponseId& rid, const std::string& text, const char* finish_reason, bool usage_null);
ojson text_chunk_usage(const ResponseId& rid, const JobUsage& u);

// OpenAI knows "stop" and "length": "length" passes through, everything else (a stop token or
// string, a cancelled run) is "stop".
std::string openai_finish_reason(const std::string& scheduler_reason);

}  // namespace whale::server
