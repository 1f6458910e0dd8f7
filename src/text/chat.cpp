#include "text/chat.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "formats/gguf.h"
#include "text/jinja/jinja.h"

namespace whale {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("{}: cannot open", p.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// tokenizer_config.json spells special tokens as a string, an AddedToken object or null.
std::optional<std::string> token_string(const ojson& cfg, const char* key) {
  if (!cfg.contains(key)) return std::nullopt;
  const ojson& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

// chat_template: a string, or a list of {name, template} (use "default").
std::string template_from_config(const ojson& cfg, const std::string& path) {
  if (!cfg.contains("chat_template")) return "";
  const ojson& t = cfg["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (auto& e : t)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return e["template"].get<std::string>();
  }
  fail("{}: chat_template is neither a string nor a list with a 'default' entry", path);
}

void add_stop_tokens(TextAssets& t) {
  const Tokenizer& tok = *t.tokenizer;
  if (tok.eos() >= 0) t.stop_tokens.push_back(tok.eos());
  for (const char* s : {"<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|EOT|>",
                        "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>", "<|endoftext|>"}) {
    auto id = tok.find_token(s);
    if (id && tok.is_added(*id) &&
        std::find(t.stop_tokens.begin(), t.stop_tokens.end(), *id) == t.stop_tokens.end())
      t.stop_tokens.push_back(*id);
  }
}

}  // namespace

TextAssets load_text_assets(const std::string& path) {
  TextAssets t;
  t.path = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    if (!fs::exists(dir / "tokenizer.json")) fail("{}: folder has no tokenizer.json", path);
    t.tokenizer = Tokenizer::from_hf(path);
    const fs::path cfg_path = dir / "tokenizer_config.json";
    if (fs::exists(cfg_path)) {
      ojson cfg = ojson::parse(read_file(cfg_path), nullptr, false);
      if (cfg.is_discarded() || !cfg.is_object()) fail("{}: not a valid JSON object", cfg_path.string());
      t.chat_template = template_from_config(cfg, cfg_path.string());
      t.bos_token = token_string(cfg, "bos_token");
      t.eos_token = token_string(cfg, "eos_token");
    }
    if (fs::exists(dir / "chat_template.jinja")) t.chat_template = read_file(dir / "chat_template.jinja");
  } else if (fs::exists(path, ec)) {
    GgufFile g(path);
    t.tokenizer = Tokenizer::from_gguf(g);
    t.chat_template = g.get_string("tokenizer.chat_template").value_or("");
    if (t.tokenizer->bos() >= 0) t.bos_token = t.tokenizer->token_text(t.tokenizer->bos());
    if (t.tokenizer->eos() >= 0) t.eos_token = t.tokenizer->token_text(t.tokenizer->eos());
  } else {
    fail("{}: no such file or folder", path);
  }
  add_stop_tokens(t);
  return t;
}

ChatRequest parse_chat_request(const std::string& text, const std::string& source) {
  ojson j = ojson::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a valid JSON object", source);
  ChatRequest r;
  r.add_generation_prompt = false;  // apply_chat_template's default when the request is silent
  if (!j.contains("messages") || !j["messages"].is_array()) fail("{}: 'messages' must be a list", source);
  for (auto& m : j["messages"])
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      fail("{}: every message needs a string 'role'", source);
  r.messages = j["messages"];
  if (j.contains("tools") && !j["tools"].is_null()) {
    if (!j["tools"].is_array()) fail("{}: 'tools' must be a list", source);
    r.tools = j["tools"];
  }
  if (j.contains("add_generation_prompt")) {
    if (!j["add_generation_prompt"].is_boolean()) fail("{}: 'add_generation_prompt' must be true or false", source);
    r.add_generation_prompt = j["add_generation_prompt"].get<bool>();
  }
  return r;
}

std::string render_chat(const TextAssets& text, const ChatRequest& req,
                        const std::string& template_source) {
  const std::string& src = template_source.empty() ? text.chat_template : template_source;
  if (src.empty()) fail("{}: the model has no chat template (pass --template FILE.jinja)", text.path);
  ojson ctx = ojson::object();
  ctx["messages"] = req.messages;
  ctx["tools"] = req.tools;  // null → None
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = req.add_generation_prompt;
  if (text.bos_token) ctx["bos_token"] = *text.bos_token;
  if (text.eos_token) ctx["eos_token"] = *text.eos_token;
  jinja::Template tmpl(src);
  return tmpl.render(ctx);
}

}  // namespace whale
