// The text side of a model: its tokenizer, its chat template and the bos/eos strings the
// template sees, loaded from a GGUF file (tokenizer.ggml.*, tokenizer.chat_template), a
// Hugging Face model folder, or a folder holding tokenizer.json + tokenizer_config.json.
// Rendering follows transformers' apply_chat_template: variables messages, tools (None when
// absent), documents (None), add_generation_prompt, bos_token / eos_token (passed only when the
// tokenizer config names them).
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>

#include "text/tokenizer.h"

namespace whale {

struct TextAssets {
  std::unique_ptr<Tokenizer> tokenizer;
  std::string chat_template;  // empty when the model ships none
  std::optional<std::string> bos_token, eos_token;
  std::string path;
  // Tokens that end an assistant turn: eos plus the families' end-of-turn specials present in
  // the vocabulary (<|eot_id|>, <|im_end|>, <｜end▁of▁sentence｜>, <|end_of_text|>, <|EOT|>).
  std::vector<int32_t> stop_tokens;
};

TextAssets load_text_assets(const std::string& path);

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null: no tools
  bool add_generation_prompt = true;
};

// Parses {"messages": [...], "tools": [...]?, "add_generation_prompt": bool?} (absent: false, as
// transformers' apply_chat_template); other keys are ignored. Throws whale::Error.
ChatRequest parse_chat_request(const std::string& json_text, const std::string& source);

// Renders with `template_source` (the model's own when empty). Throws whale::Error when there is
// no template or the template cannot be rendered.
std::string render_chat(const TextAssets& text, const ChatRequest& req,
                        const std::string& template_source = "");

}  // namespace whale
