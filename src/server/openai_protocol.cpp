#include "server/openai_protocol.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace whale::server {

using ojson = nlohmann::ordered_json;

namespace {

std::string default_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 408: return "timeout_error";
    case 413: case 415: case 431: return "invalid_request_error";
    case 429: return "rate_limit_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

// The parsed body must be an object; the messages name what was wrong, not the parser's state.
ojson parse_body(std::string_view body) {
  if (body.empty()) throw ApiError(400, "the request body is empty; send a JSON object", "", "invalid_json");
  ojson j;
  try {
    j = ojson::parse(body);  // rejects invalid UTF-8 and lone surrogates in strings
  } catch (const ojson::parse_error& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON (byte {})", e.byte), "",
                   "invalid_json");
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object", "", "invalid_json");
  return j;
}

// Field readers: absent or null → nullopt; a value of the wrong type → ApiError naming it.
const ojson* field(const ojson& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void bad(const std::string& param, const std::string& what) {
  throw ApiError(400, fmt::format("'{}' {}", param, what), param, "invalid_value");
}

std::optional<double> get_number(const ojson& j, const char* key, double lo, double hi) {
  const ojson* v = field(j, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(key, "must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) bad(key, fmt::format("must be between {} and {}", lo, hi));
  return d;
}

std::optional<int64_t> get_integer(const ojson& j, const char* key, int64_t lo, int64_t hi) {
  const ojson* v = field(j, key);
  if (!v) return std::nullopt;
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (d != std::floor(d)) bad(key, "must be an integer");
    if (!(d >= double(lo) && d <= double(hi))) bad(key, fmt::format("must be between {} and {}", lo, hi));
    return int64_t(d);
  }
  if (!v->is_number_integer()) bad(key, "must be an integer");
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > uint64_t(hi) || (lo > 0 && u < uint64_t(lo))) bad(key, fmt::format("must be between {} and {}", lo, hi));
    return int64_t(u);
  }
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi) bad(key, fmt::format("must be between {} and {}", lo, hi));
  return i;
}

std::optional<bool> get_bool(const ojson& j, const char* key) {
  const ojson* v = field(j, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(key, "must be true or false");
  return v->get<bool>();
}

CompletionOptions parse_options(const ojson& j) {
  CompletionOptions o;
  if (const ojson* m = field(j, "model")) {
    if (!m->is_string()) bad("model", "must be a string");
    o.model = m->get<std::string>();
  }
  constexpr int64_t kMaxTokens = int64_t(1) << 31;
  o.max_tokens = get_integer(j, "max_completion_tokens", 1, kMaxTokens);
  if (!o.max_tokens) o.max_tokens = get_integer(j, "max_tokens", 1, kMaxTokens);
  if (auto t = get_number(j, "temperature", 0, 2)) o.temperature = float(*t);
  if (auto p = get_number(j, "top_p", 0, 1)) o.top_p = float(*p);
  if (auto k = get_integer(j, "top_k", 0, std::numeric_limits<int32_t>::max())) o.top_k = int32_t(*k);
  if (auto s = get_integer(j, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
    o.seed = uint64_t(*s);
  if (auto n = get_integer(j, "n", 1, 128); n && *n != 1)
    throw ApiError(400, "only n = 1 is supported", "n", "unsupported_value");
  if (const ojson* s = field(j, "stop")) {
    if (s->is_string()) {
      o.stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      if (s->size() > 4) bad("stop", "may hold at most 4 strings");
      for (const auto& e : *s) {
        if (!e.is_string()) bad("stop", "must be a string or a list of strings");
        o.stop.push_back(e.get<std::string>());
      }
    } else {
      bad("stop", "must be a string or a list of strings");
    }
    std::erase_if(o.stop, [](const std::string& s) { return s.empty(); });
  }
  o.stream = get_bool(j, "stream").value_or(false);
  if (const ojson* so = field(j, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "must be an object");
    if (!o.stream)
      throw ApiError(400, "'stream_options' is only allowed when 'stream' is true", "stream_options",
                     "invalid_value");
    o.include_usage = get_bool(*so, "include_usage").value_or(false);
  }
  return o;
}

// Text of a message's content: a string, or a list of {"type": "text", "text": ...} parts.
std::string content_text(const ojson& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad(param, "must be a string or a list of content parts");
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const ojson& part = content[i];
    const std::string p = fmt::format("{}[{}]", param, i);
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) bad(p, "must be an object with a 'type'");
    if (part["type"] != "text")
      throw ApiError(400, fmt::format("'{}': only text content parts are supported, got '{}'", p,
                                      part["type"].get<std::string>()), p, "unsupported_value");
    if (!part.contains("text") || !part["text"].is_string()) bad(p + ".text", "must be a string");
    text += part["text"].get<std::string>();
  }
  return text;
}

ojson parse_messages(const ojson& j) {
  const ojson* msgs = field(j, "messages");
  if (!msgs) throw ApiError(400, "'messages' is required", "messages", "missing_required_parameter");
  if (!msgs->is_array()) bad("messages", "must be a list of messages");
  if (msgs->empty()) bad("messages", "must hold at least one message");
  ojson out = ojson::array();
  for (size_t i = 0; i < msgs->size(); ++i) {
    const ojson& m = (*msgs)[i];
    const std::string p = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad(p, "must be an object");
    const ojson* role = field(m, "role");
    if (!role || !role->is_string()) bad(p + ".role", "must be one of system, developer, user, assistant, tool");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system role
    if (r != "system" && r != "user" && r != "assistant" && r != "tool")
      bad(p + ".role", "must be one of system, developer, user, assistant, tool");
    ojson nm = ojson::object();
    nm["role"] = r;
    const ojson* content = field(m, "content");
    if (!content) {
      if (r != "assistant" || !m.contains("tool_calls"))
        throw ApiError(400, fmt::format("'{}.content' is required", p), p + ".content", "missing_required_parameter");
      nm["content"] = nullptr;
    } else {
      nm["content"] = content_text(*content, p + ".content");
    }
    // Passed through for templates that render tool use.
    for (const char* key : {"tool_calls", "tool_call_id", "name"})
      if (m.contains(key)) nm[key] = m[key];
    out.push_back(std::move(nm));
  }
  return out;
}

}  // namespace

ApiError::ApiError(int status, std::string message, std::string param, std::string code, std::string type)
    : std::runtime_error(std::move(message)),
      status_(status),
      type_(type.empty() ? default_type(status) : std::move(type)),
      param_(std::move(param)),
      code_(std::move(code)) {}

ojson ApiError::body() const {
  ojson e;
  e["message"] = what();
  e["type"] = type_;
  e["param"] = param_.empty() ? ojson(nullptr) : ojson(param_);
  e["code"] = code_.empty() ? ojson(nullptr) : ojson(code_);
  ojson j;
  j["error"] = std::move(e);
  return j;
}

ChatCompletionRequest parse_chat_completion_request(std::string_view body) {
  const ojson j = parse_body(body);
  ChatCompletionRequest r;
  r.messages = parse_messages(j);
  r.opts = parse_options(j);
  if (const ojson* t = field(j, "tools")) {
    if (!t->is_array()) bad("tools", "must be a list");
    if (!t->empty()) r.tools = *t;
  }
  return r;
}

TextCompletionRequest parse_text_completion_request(std::string_view body) {
  const ojson j = parse_body(body);
  TextCompletionRequest r;
  r.opts = parse_options(j);
  const ojson* p = field(j, "prompt");
  if (!p) throw ApiError(400, "'prompt' is required", "prompt", "missing_required_parameter");
  auto ids_from = [&](const ojson& a) {
    for (const auto& e : a) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > std::numeric_limits<int32_t>::max())
        bad("prompt", "token ids must be non-negative integers");
      r.prompt_ids.push_back(int32_t(e.get<int64_t>()));
    }
    r.has_ids = true;
  };
  if (p->is_string()) {
    r.prompt = p->get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) {
    r.prompt = (*p)[0].get<std::string>();
  } else if (p->is_array() && p->size() == 1 && (*p)[0].is_array()) {
    ids_from((*p)[0]);
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    ids_from(*p);
  } else if (p->is_array() && p->size() > 1) {
    throw ApiError(400, "only one prompt per request is supported", "prompt", "unsupported_value");
  } else {
    bad("prompt", "must be a string, a list of token ids, or a list holding one of those");
  }
  if (r.has_ids ? r.prompt_ids.empty() : r.prompt.empty()) bad("prompt", "must not be empty");
  return r;
}

}  // namespace whale::server
