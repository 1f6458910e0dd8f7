// whale run -m PATH --tokens 1,2,3 -n 16: prefill the prompt, then generate token by token;
// prints the generated ids comma-separated on one line. --dump-logits FILE writes the logits
// of every prompt position as little-endian float32 [n_prompt, n_vocab]; it is a correctness
// tool, so it runs the exact matmul path (float32 activations) unless WHALE_MATMUL says otherwise.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>

#include <unistd.h>

#include "chat_ui.h"
#include "commands.h"
#include "file_io.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "cache_type.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "text/chat.h"

namespace whale::app {

namespace {

struct RunArgs {
  std::string model;
  std::string tokens;
  int n_predict = 16;
  int threads = 0;
  int n_ctx = 0;
  SamplerParams sampling;
  std::string dump_logits;
  bool naive_mla = false;
  std::string cache_type;  // empty: f16, or f32 with --dump-logits (the exact path fixtures check)
  // Text mode (-p): the prompt goes through the chat template unless --raw.
  std::string prompt, template_file;
  bool raw = false, hide_reasoning = false;
};

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    item.erase(0, item.find_first_not_of(" \t\n"));
    item.erase(item.find_last_not_of(" \t\n") + 1);
    if (item.empty()) fail("--tokens: empty item in '{}'", s);
    size_t used = 0;
    long long v;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      fail("--tokens: '{}' is not a token id", item);
    }
    if (used != item.size() || v < 0 || v > INT32_MAX) fail("--tokens: '{}' is not a token id", item);
    ids.push_back(int32_t(v));
    i = j + 1;
  }
  return ids;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// -p "text": one chat turn (or a raw completion with --raw), streamed like `whale chat`.
void run_text_prompt(const RunArgs& a) {
  auto model = load_model(a.model);
  TextAssets text = load_text_assets(a.model);
  const std::string tmpl = read_file_if_given(a.template_file);
  const bool use_template = !a.raw && (!tmpl.empty() || !text.chat_template.empty());
  std::string prompt = a.prompt;
  if (use_template) {
    ChatRequest req;
    req.messages.push_back({{"role", "user"}, {"content", a.prompt}});
    prompt = render_chat(text, req, tmpl);
  } else if (!a.raw) {
    fmt::print(stderr, "whale: {} has no chat template: completing the raw prompt\n", a.model);
  }
  const int64_t n_prompt = int64_t(text.tokenizer->encode(prompt, !use_template).size());
  const int64_t n_ctx = a.n_ctx > 0 ? a.n_ctx : n_prompt + a.n_predict;
  Session session(*model, n_ctx, cache_type_or(a.cache_type, DType::F16));
  GenerateOptions gen{.max_tokens = a.n_predict, .sampling = a.sampling, .stop_tokens = text.stop_tokens};
  install_interrupt_handler();
  stream_answer(session, text, prompt, gen,
                ChatUiOptions{.hide_reasoning = a.hide_reasoning, .color = bool(isatty(STDOUT_FILENO))},
                /*add_special_tokens=*/!use_template);
}

void run_generate(const RunArgs& a) {
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  if (!a.prompt.empty() && !a.tokens.empty()) fail("give either -p TEXT or --tokens IDS, not both");
  if (!a.prompt.empty()) return run_text_prompt(a);
  if (a.tokens.empty()) fail("give a prompt with -p TEXT or --tokens 1,2,3");
  const std::vector<int32_t> prompt = parse_ids(a.tokens);
  if (prompt.empty()) fail("--tokens: the prompt is empty");
  if (a.n_predict < 0) fail("-n must be >= 0");

  std::ofstream dump;  // opened before the work, so a bad path fails fast
  if (!a.dump_logits.empty()) {
    dump.open(a.dump_logits, std::ios::binary | std::ios::trunc);
    if (!dump) fail("{}: cannot open for writing", a.dump_logits);
    if (!std::getenv("WHALE_MATMUL")) set_matmul_precision(MatmulPrecision::Exact);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto model = load_model(a.model, LoadOptions{.naive_mla = a.naive_mla});
  const ModelConfig& c = model->config();
  const int64_t needed = int64_t(prompt.size()) + a.n_predict;
  const int64_t n_ctx = a.n_ctx > 0 ? a.n_ctx : needed;
  if (needed > n_ctx)
    fail("prompt ({} tokens) + {} to generate exceed the context of {} (-c)", prompt.size(),
         a.n_predict, n_ctx);
  KvCache kv(c, n_ctx, cache_type_or(a.cache_type, a.dump_logits.empty() ? DType::F16 : DType::F32));
  fmt::print(stderr, "whale: loaded {} ({}) in {:.2f} s, context {}, KV cache {} bytes/token\n",
             a.model, arch_name(c.arch), seconds_since(t0), n_ctx, kv.bytes_per_token());

  const int64_t V = c.n_vocab, n = int64_t(prompt.size());
  const bool all = !a.dump_logits.empty();
  std::vector<float> logits(size_t((all ? n : 1) * V));
  std::vector<int32_t> pos(prompt.size());
  std::iota(pos.begin(), pos.end(), 0);
  auto t1 = std::chrono::steady_clock::now();
  model->forward(prompt, pos, kv, logits.data(), all);
  const double t_prefill = seconds_since(t1);
  if (all) {
    dump.write(reinterpret_cast<const char*>(logits.data()), std::streamsize(logits.size() * sizeof(float)));
    dump.close();
    if (!dump) fail("{}: write failed", a.dump_logits);
  }

  Sampler sampler(a.sampling);
  const float* last = logits.data() + (all ? (n - 1) * V : 0);
  std::vector<int32_t> generated;
  auto t2 = std::chrono::steady_clock::now();
  for (int i = 0; i < a.n_predict; ++i) {
    int32_t tok = sampler.sample(last, V);
    generated.push_back(tok);
    if (i + 1 == a.n_predict) break;
    int32_t p = int32_t(n + i);
    model->forward(std::span(&tok, 1), std::span(&p, 1), kv, logits.data(), false);
    last = logits.data();
  }
  const double t_gen = seconds_since(t2);
  std::string line;
  for (size_t i = 0; i < generated.size(); ++i) line += (i ? "," : "") + std::to_string(generated[i]);
  fmt::print("{}\n", line);
  fmt::print(stderr, "whale: prompt {} tokens in {:.3f} s ({:.1f} t/s), generated {} in {:.3f} s ({:.1f} t/s)\n",
             n, t_prefill, n / std::max(t_prefill, 1e-9), generated.size(), t_gen,
             generated.size() > 1 ? (generated.size() - 1) / std::max(t_gen, 1e-9) : 0.0);
}

}  // namespace

void register_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand("run", "generate from a prompt of token ids");
  cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
  cmd->add_option("--tokens", a->tokens, "prompt as comma-separated token ids");
  cmd->add_option("-p,--prompt", a->prompt, "prompt text (one chat turn through the model's template)");
  cmd->add_option("--template", a->template_file, "with -p: chat template file instead of the model's");
  cmd->add_flag("--raw", a->raw, "with -p: no chat template, complete the text as is (BOS added)");
  cmd->add_flag("--hide-reasoning", a->hide_reasoning, "with -p: do not show the <think> reasoning");
  cmd->add_option("-n,--n-predict", a->n_predict, "tokens to generate")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_option("-c,--ctx-size", a->n_ctx, "context size (default: prompt + n)");
  cmd->add_option("--temp", a->sampling.temperature, "temperature; 0 = greedy (ties: lowest id)")->capture_default_str();
  cmd->add_option("--top-k", a->sampling.top_k, "top-k sampling; 0 = off")->capture_default_str();
  cmd->add_option("--top-p", a->sampling.top_p, "top-p (nucleus) sampling; 1 = off")->capture_default_str();
  cmd->add_option("--seed", a->sampling.seed, "random seed")->capture_default_str();
  cmd->add_option("--dump-logits", a->dump_logits, "write prompt logits as f32 [n_prompt, n_vocab]");
  cmd->add_flag("--naive-mla", a->naive_mla, "deepseek2: expanded (non-absorbed) MLA, for checking");
  add_cache_type_option(cmd, &a->cache_type, "f16, f32 with --dump-logits");
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace whale::app
