#include "server/openai_responses.h"

#include <fmt/format.h>

#include <chrono>
#include <random>

namespace whale::server {

ResponseId ResponseId::make(const char* prefix, const std::string& model) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  ResponseId r;
  r.id = fmt::format("{}-{:016x}{:08x}", prefix, rng(), uint32_t(rng()));
  r.created = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch()).count();
  r.model = model;
  return r;
}

ojson usage_json(const JobUsage& u) {
  ojson j;
  j["prompt_tokens"] = u.prompt_tokens;
  j["completion_tokens"] = u.completion_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  j["prompt_tokens_details"] = {{"cached_tokens", u.cached_tokens}};
  j["completion_tokens_details"] = {{"reasoning_tokens", u.reasoning_tokens}};
  return j;
}

namespace {
ojson head(const ResponseId& rid, const char* object) {
  ojson j;
  j["id"] = rid.id;
  j["object"] = object;
  j["created"] = rid.created;
  j["model"] = rid.model;
  j["system_fingerprint"] = "whale";
  return j;
}
}  // namespace

std::string openai_finish_reason(const std::string& r) {
  return r == "length" ? "length" : "stop";
}

ojson chat_completion(const ResponseId& rid, const std::string& reasoning, const std::string& content,
                      const std::string& finish_reason, const JobUsage& u) {
  ojson j = head(rid, "chat.completion");
  ojson msg;
  msg["role"] = "assistant";
  msg["content"] = content;
  if (!reasoning.empty()) msg["reasoning_content"] = reasoning;
  msg["refusal"] = nullptr;
  ojson choice;
  choice["index"] = 0;
  choice["message"] = msg;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = openai_finish_reason(finish_reason);
  j["choices"] = ojson::array({choice});
  j["usage"] = usage_json(u);
  return j;
}

ojson text_completion(const ResponseId& rid, const std::string& text, const std::string& finish_reason,
                      const JobUsage& u) {
  ojson j = head(rid, "text_completion");
  ojson choice;
  choice["text"] = text;
  choice["index"] = 0;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = openai_finish_reason(finish_reason);
  j["choices"] = ojson::array({choice});
  j["usage"] = usage_json(u);
  return j;
}

namespace {
ojson chat_chunk(const ResponseId& rid, ojson delta, const ojson& finish, bool usage_null) {
  ojson j = head(rid, "chat.completion.chunk");
  ojson choice;
  choice["index"] = 0;
  choice["delta"] = std::move(delta);
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish;
  j["choices"] = ojson::array({choice});
  if (usage_null) j["usage"] = nullptr;
  return j;
}
}  // namespace

ojson chat_chunk_role(const ResponseId& rid, bool usage_null) {
  ojson d;
  d["role"] = "assistant";
  d["content"] = "";
  return chat_chunk(rid, d, nullptr, usage_null);
}

ojson chat_chunk_delta(const ResponseId& rid, const TextDelta& td, bool usage_null) {
  ojson d = ojson::object();
  if (!td.reasoning.empty()) d["reasoning_content"] = td.reasoning;
  if (!td.content.empty()) d["content"] = td.content;
  return chat_chunk(rid, d, nullptr, usage_null);
}

ojson chat_chunk_finish(const ResponseId& rid, const std::string& finish_reason, bool usage_null) {
  return chat_chunk(rid, ojson::object(), openai_finish_reason(finish_reason), usage_null);
}

ojson chat_chunk_usage(const ResponseId& rid, const JobUsage& u) {
  ojson j = head(rid, "chat.completion.chunk");
  j["choices"] = ojson::array();
  j["usage"] = usage_json(u);
  return j;
}

ojson text_chunk(const ResponseId& rid, const std::string& text, const char* finish_reason, bool usage_null) {
  ojson j = head(rid, "text_completion");
  ojson choice;
  choice["text"] = text;
  choice["index"] = 0;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason ? ojson(openai_finish_reason(finish_reason)) : ojson(nullptr);
  j["choices"] = ojson::array({choice});
  if (usage_null) j["usage"] = nullptr;
  return j;
}

ojson text_chunk_usage(const ResponseId& rid, const JobUsage& u) {
  ojson j = head(rid, "text_completion");
  j["choices"] = ojson::array();
  j["usage"] = usage_json(u);
  return j;
}

}  // namespace whale::server
