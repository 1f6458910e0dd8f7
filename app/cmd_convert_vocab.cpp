// whale convert-vocab -m TOKENIZER_DIR -o OUT.gguf [--pre NAME] [--arch NAME]
//
// Writes a vocabulary-only GGUF (no tensors) from a Hugging Face tokenizer folder
// (tokenizer.json + tokenizer_config.json), with the keys llama.cpp reads for a byte-level BPE
// ("gpt2") vocabulary. Uses: run llama.cpp's tools (llama-tokenize, vocab-only loading) on the
// same vocabulary as a safetensors model, compare tokenizers, or give a GGUF model converted
// without its tokenizer one. whale itself reads the file back (Tokenizer::from_gguf), and this
// command checks that it encodes a sample text to the same ids as tokenizer.json does.
//
// Keys written:
//   general.architecture        llama (llama-bpe), qwen2 (qwen2), deepseek2 (deepseek-v3); --arch
//   general.name                the folder's name
//   tokenizer.ggml.model        "gpt2"
//   tokenizer.ggml.pre          detected from the pre-tokenizer's Split regexes (llama-bpe, qwen2,
//                               deepseek-v3); --pre for any other
//   tokenizer.ggml.tokens       by id: the byte-level spelling of BPE tokens ("Ġthe"), the content
//                               of added tokens, "[PAD<id>]" for ids nobody uses
//   tokenizer.ggml.token_type   1 normal, 3 control (added, special), 4 user-defined (added,
//                               not special), 5 unused (the holes)
//   tokenizer.ggml.merges       "a b", in rank order
//   tokenizer.ggml.bos_token_id / eos_token_id / padding_token_id   when the tokenizer has one
//   tokenizer.ggml.add_bos_token / add_eos_token   what encode(add_special_tokens=true) adds
//   tokenizer.chat_template     tokenizer_config.json's chat_template (a list of named templates
//                               becomes tokenizer.chat_template.NAME, "default" the plain key)
// No model hyperparameters are written: llama.cpp skips them when loading vocab-only.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "commands.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "text/tokenizer.h"

namespace whale::app {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

enum TokenType : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5 };

struct ConvertVocabArgs {
  std::string model, out, pre, arch;
};

json read_json(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("{}: cannot open", p.string());
  json j = json::parse(std::istreambuf_iterator<char>(in), {}, nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a valid JSON object", p.string());
  return j;
}

// The Split regexes of the pre-tokenizer, in order.
std::vector<std::string> split_patterns(const json& tok) {
  std::vector<std::string> out;
  const json& pt = tok.value("pre_tokenizer", json());
  if (!pt.is_object()) return out;
  const json seq = pt.value("type", "") == "Sequence" ? pt.value("pretokenizers", json::array())
                                                       : json::array({pt});
  for (const json& p : seq)
    if (p.value("type", "") == "Split" && p.contains("pattern") && p["pattern"].contains("Regex"))
      out.push_back(p["pattern"]["Regex"].get<std::string>());
  return out;
}

std::string detect_pre(const json& tok, const std::string& source) {
  static const std::string kLlama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::string kQwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::vector<std::string> kDeepseekV3 = {
      R"(\p{N}{1,3})",
      "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
      "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"};
  const std::vector<std::string> pats = split_patterns(tok);
  if (pats == std::vector<std::string>{kLlama3}) return "llama-bpe";
  if (pats == std::vector<std::string>{kQwen2}) return "qwen2";
  if (pats == kDeepseekV3) return "deepseek-v3";
  fail("{}: unknown pre-tokenizer (not Llama 3, Qwen2 or DeepSeek-V3); name llama.cpp's with --pre",
       source);
}

std::string arch_for_pre(const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return "llama";
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") return "qwen2";
  if (pre == "deepseek-v3") return "deepseek2";
  fail("no default architecture for pre-tokenizer '{}'; name one with --arch", pre);
}

void write_chat_templates(GgufWriter& w, const json& cfg, const std::string& source) {
  if (!cfg.contains("chat_template") || cfg["chat_template"].is_null()) return;
  const json& t = cfg["chat_template"];
  if (t.is_string()) return w.set_string("tokenizer.chat_template", t.get<std::string>());
  if (!t.is_array()) fail("{}: chat_template must be a string or a list", source);
  for (const json& e : t) {
    if (!e.is_object() || !e.value("name", json()).is_string() || !e.value("template", json()).is_string())
      fail("{}: chat_template list entries need string 'name' and 'template'", source);
    const std::string name = e["name"];
    w.set_string(name == "default" ? "tokenizer.chat_template" : "tokenizer.chat_template." + name,
                 e["template"].get<std::string>());
  }
}

// A text touching every pre-tokenizer rule, plus one added token of each kind.
std::string sample_text(const json& tok) {
  std::string s =
      "Hello world! It's 2025-06-01, π≈3.14159 and 1234567 apples.\n\n  def f(x):\n\treturn "
      "x**2  # done\r\n你好，世界。こんにちは、カタカナ。안녕하세요 مرحبا بالعالم Привет 👋🏽 e\u0301 ";
  bool special = false, plain = false;
  for (const json& a : tok.value("added_tokens", json::array())) {
    bool& seen = a.value("special", false) ? special : plain;
    if (!seen) s += a.value("content", "") + " x ";
    seen = true;
  }
  return s;
}

void run_convert_vocab(const ConvertVocabArgs& a) {
  const fs::path dir(a.model);
  if (!fs::is_directory(dir)) fail("{}: not a folder (want one with tokenizer.json)", a.model);
  const fs::path tok_path = dir / "tokenizer.json", cfg_path = dir / "tokenizer_config.json";
  const json tok = read_json(tok_path);
  const json cfg = fs::exists(cfg_path) ? read_json(cfg_path) : json::object();
  const std::string src = tok_path.string();

  const json& model = tok.value("model", json());
  if (!model.is_object() || model.value("type", "") != "BPE" || !model.value("vocab", json()).is_object() ||
      !model.value("merges", json()).is_array())
    fail("{}: model must be BPE with a vocab object and a merges list", src);
  if (model.value("byte_fallback", false)) fail("{}: byte_fallback BPE is not a byte-level vocabulary", src);

  // Tokens by id: the BPE vocabulary, then added tokens (which win on a shared id, as in HF).
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  auto slot = [&](int64_t id) -> size_t {
    if (id < 0 || id > INT32_MAX) fail("{}: token id {} out of range", src, id);
    if (size_t(id) >= tokens.size()) {
      tokens.resize(size_t(id) + 1);
      types.resize(size_t(id) + 1, 0);
    }
    return size_t(id);
  };
  for (const auto& [text, id] : model["vocab"].items()) {
    const size_t i = slot(id.get<int64_t>());
    tokens[i] = text;
    types[i] = kNormal;
  }
  size_t n_added = 0;
  for (const json& t : tok.value("added_tokens", json::array())) {
    const size_t i = slot(t.at("id").get<int64_t>());
    tokens[i] = t.at("content").get<std::string>();
    types[i] = t.value("special", false) ? kControl : kUserDefined;
    ++n_added;
  }
  for (size_t i = 0; i < tokens.size(); ++i)
    if (types[i] == 0) {
      tokens[i] = fmt::format("[PAD{}]", i);
      types[i] = kUnused;
    }

  std::vector<std::string> merges;
  merges.reserve(model["merges"].size());
  for (const json& m : model["merges"]) {
    if (m.is_string()) merges.push_back(m.get<std::string>());
    else if (m.is_array() && m.size() == 2) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    else fail("{}: merges must be \"a b\" strings or [a, b] pairs", src);
  }

  // BOS/EOS and what add_special_tokens adds follow HF's rules, which whale's tokenizer knows.
  const auto hf = Tokenizer::from_hf(a.model);
  const std::string pre = a.pre.empty() ? detect_pre(tok, src) : a.pre;
  const std::string arch = a.arch.empty() ? arch_for_pre(pre) : a.arch;

  GgufWriter w;
  w.set_string("general.architecture", arch);
  fs::path name = fs::absolute(dir).lexically_normal();
  if (name.filename().empty()) name = name.parent_path();  // "dir/"
  w.set_string("general.name", name.filename().string());
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_array_str("tokenizer.ggml.tokens", tokens);
  w.set_array_i32("tokenizer.ggml.token_type", types);
  w.set_array_str("tokenizer.ggml.merges", merges);
  if (hf->bos() >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(hf->bos()));
  if (hf->eos() >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(hf->eos()));
  if (const json pad = cfg.value("pad_token", json()); !pad.is_null()) {
    const std::string content = pad.is_object() ? pad.value("content", "") : pad.get<std::string>();
    if (auto id = hf->find_token(content)) w.set_u32("tokenizer.ggml.padding_token_id", uint32_t(*id));
  }
  const auto& prefix = hf->special_prefix();
  const auto& suffix = hf->special_suffix();
  if (prefix.size() > 1 || (prefix.size() == 1 && prefix[0] != hf->bos()) || suffix.size() > 1 ||
      (suffix.size() == 1 && suffix[0] != hf->eos()))
    fail("{}: add_special_tokens adds more than BOS/EOS, which GGUF cannot express", src);
  w.set_bool("tokenizer.ggml.add_bos_token", prefix.size() == 1);
  w.set_bool("tokenizer.ggml.add_eos_token", suffix.size() == 1);
  write_chat_templates(w, cfg, cfg_path.string());
  w.write(a.out);

  // Read it back as whale's GGUF tokenizer and compare with tokenizer.json on a sample.
  GgufFile g(a.out);
  const auto back = Tokenizer::from_gguf(g);
  const std::string sample = sample_text(tok);
  for (bool add : {false, true})
    if (back->encode(sample, add) != hf->encode(sample, add))
      fail("{}: written, but reading it back encodes a sample text differently from {}", a.out, src);

  fmt::print("{}: {} tokens ({} added, {} unused), {} merges, pre {}, arch {}\n", a.out, tokens.size(),
             n_added, std::count(types.begin(), types.end(), int32_t(kUnused)), merges.size(), pre, arch);
}

}  // namespace

void register_convert_vocab(CLI::App& app) {
  auto a = std::make_shared<ConvertVocabArgs>();
  CLI::App* c = app.add_subcommand("convert-vocab", "HF tokenizer folder → vocabulary-only GGUF (llama.cpp keys)");
  c->add_option("-m,--model", a->model, "folder with tokenizer.json (+ tokenizer_config.json)")->required();
  c->add_option("-o,--out", a->out, "the GGUF file to write")->required();
  c->add_option("--pre", a->pre, "tokenizer.ggml.pre (default: detected)");
  c->add_option("--arch", a->arch, "general.architecture (default: from the pre-tokenizer)");
  c->callback([a] { run_convert_vocab(*a); });
}

}  // namespace whale::app
