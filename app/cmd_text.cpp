// whale tokenize / whale render: the text layer from the command line.
//   whale tokenize -m PATH [--no-special]          stdin text  → ids "1,2,3"
//   whale tokenize -m PATH --decode [--skip-special] stdin ids → exact text
//   whale render -m PATH --request FILE.json [--template FILE.jinja] → the prompt text
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <iterator>

#include "commands.h"
#include "file_io.h"
#include "core/error.h"
#include "text/chat.h"

namespace whale::app {

namespace {

std::string read_all(std::istream& in) { return std::string(std::istreambuf_iterator<char>(in), {}); }


std::vector<int32_t> parse_id_list(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  const size_t n = s.size();
  auto skip_ws = [&] { while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i; };
  skip_ws();
  if (i == n) return ids;
  for (;;) {
    skip_ws();
    size_t j = i;
    while (j < n && s[j] >= '0' && s[j] <= '9') ++j;
    if (j == i || j - i > 10) fail("expected a token id at byte {} of the input", i);
    long long v = std::stoll(s.substr(i, j - i));
    if (v > INT32_MAX) fail("token id {} is too large", v);
    ids.push_back(int32_t(v));
    i = j;
    skip_ws();
    if (i == n) break;
    if (s[i] != ',') fail("expected ',' at byte {} of the input", i);
    ++i;
  }
  return ids;
}

struct TokenizeArgs {
  std::string model;
  bool no_special = false, decode = false, skip_special = false;
};

void run_tokenize(const TokenizeArgs& a) {
  TextAssets text = load_text_assets(a.model);
  const std::string input = read_all(std::cin);
  if (a.decode) {
    std::vector<int32_t> ids = parse_id_list(input);
    for (int32_t id : ids)
      if (!text.tokenizer->is_valid_id(id)) fail("token id {} is not in the vocabulary", id);
    std::string out = text.tokenizer->decode(ids, a.skip_special);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return;
  }
  std::vector<int32_t> ids = text.tokenizer->encode(input, !a.no_special);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
  fmt::print("{}\n", line);
}

struct RenderArgs {
  std::string model, request, template_file;
};

void run_render(const RenderArgs& a) {
  TextAssets text = load_text_assets(a.model);
  ChatRequest req = parse_chat_request(read_file(a.request), a.request);
  const std::string tmpl = read_file_if_given(a.template_file);
  std::string out = render_chat(text, req, tmpl);
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void register_text(CLI::App& app) {
  auto t = std::make_shared<TokenizeArgs>();
  CLI::App* tok = app.add_subcommand("tokenize", "text on stdin → token ids (or ids → text with --decode)");
  tok->add_option("-m,--model", t->model, "GGUF file, HF folder or tokenizer folder")->required();
  tok->add_flag("--no-special", t->no_special, "add_special_tokens = false");
  tok->add_flag("--decode", t->decode, "read comma-separated ids, print the text");
  tok->add_flag("--skip-special", t->skip_special, "with --decode: drop special tokens");
  tok->callback([t] { run_tokenize(*t); });

  auto r = std::make_shared<RenderArgs>();
  CLI::App* ren = app.add_subcommand("render", "print the prompt the chat template makes of a request");
  ren->add_option("-m,--model", r->model, "GGUF file, HF folder or tokenizer folder")->required();
  ren->add_option("--request", r->request, "JSON file: {messages, tools?, add_generation_prompt?}")->required();
  ren->add_option("--template", r->template_file, "render this Jinja template instead of the model's");
  ren->callback([r] { run_render(*r); });
}

}  // namespace whale::app
