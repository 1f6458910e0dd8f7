// The chat page served at GET /: one self-contained HTML file (no build step, no external
// resources) that streams from /v1/chat/completions, shows reasoning in a collapsible block
// and can stop an answer.
#pragma once

#include <string_view>

namespace whale::server {

std::string_view webui_html();

}  // namespace whale::server
