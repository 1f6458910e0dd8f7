// Server-sent events as OpenAI streams them: each event is one `data: <json>` line and a blank
// line; the stream ends with `data: [DONE]`.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace whale::server {

inline std::string sse_data(const nlohmann::ordered_json& j) { return "data: " + j.dump() + "\n\n"; }
inline std::string sse_done() { return "data: [DONE]\n\n"; }

}  // namespace whale::server
