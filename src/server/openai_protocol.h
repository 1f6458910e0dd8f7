// The OpenAI request side: JSON bodies of POST /v1/chat/completions and /v1/completions parsed
// and validated into typed requests, or an ApiError carrying the HTTP status and OpenAI's error
// object fields. Unknown fields are ignored (clients send many we do not use); fields we know
// are checked for type and range so a wrong one names itself in `param`.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace whale::server {

// An error answered to the client as {"error": {"message", "type", "param", "code"}}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string param = "", std::string code = "",
           std::string type = "");
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }  // "" → null
  const std::string& code() const { return code_; }    // "" → null
  nlohmann::ordered_json body() const;

 private:
  int status_;
  std::string type_, param_, code_;
};

// Sampling and stopping options shared by both endpoints.
struct CompletionOptions {
  std::string model;                    // echoed back; any name is accepted
  std::optional<int64_t> max_tokens;    // max_tokens / max_completion_tokens; absent: to the context end
  float temperature = 1.0f;             // OpenAI's default; 0 → greedy
  float top_p = 1.0f;
  int32_t top_k = 0;                    // extension (llama-server): 0 = off
  std::optional<uint64_t> seed;         // absent: a random seed per request
  std::vector<std::string> stop;        // up to 4 non-empty strings
  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage
};

struct ChatCompletionRequest {
  CompletionOptions opts;
  // Messages normalised for the chat template: {"role", "content": string} (content parts of
  // type "text" are joined; assistant content may be null when it carries tool_calls).
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;  // null when absent
};

struct TextCompletionRequest {
  CompletionOptions opts;
  std::string prompt;               // text prompt (tokenized with the model's special tokens), or
  std::vector<int32_t> prompt_ids;  // a prompt given as token ids (used as is)
  bool has_ids = false;
};

// Throw ApiError (status 400 unless said otherwise) on anything invalid.
ChatCompletionRequest parse_chat_completion_request(std::string_view body);
TextCompletionRequest parse_text_completion_request(std::string_view body);

}  // namespace whale::server
