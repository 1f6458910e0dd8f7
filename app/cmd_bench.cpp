// whale bench -m PATH [-p 512] [-n 128] [-d 0] [-t N] [-r 3] [-o md|json]
// Throughput in llama-bench's terms, on random token ids:
//   pp<p>: one forward of p tokens (logits of the last one only) into the KV cache;
//   tg<n>: n single-token forwards, one after the other;
//   with -d D both run after a D-token prefill ("@ dD"; the prefill is not timed).
// Each test: one untimed warm-up, then r timed repetitions → tokens/s mean ± sample sd.
// Also reported: peak RSS (getrusage), KV-cache bytes per token, and for tg the weight bytes
// one token reads (dense: every tensor but one token_embd row, or all of it when it doubles as
// the output head; MoE: non-expert tensors + n_expert_used / n_expert of each stacked expert
// tensor) × t/s = achieved bandwidth (weights only; the KV cache read is not counted).
// -o json: one JSON object per test per line (llama-bench's key names where they exist).
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <random>

#include "cache_type.h"
#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "model/shapes.h"

namespace whale::app {

namespace {

struct BenchArgs {
  std::string model;
  int n_prompt = 512, n_gen = 128, depth = 0, threads = 0, reps = 3;
  std::string output = "md";
  int64_t mla_expanded_min = LoadOptions{}.mla_expanded_min;
  std::string cache_type;
};

struct ModelStats {
  uint64_t bytes = 0;             // all tensors
  int64_t params = 0;
  uint64_t bytes_per_token = 0;   // weights one decoded token reads
  std::string type;               // file type, e.g. "Q4_K - Medium"
  std::string desc;               // llama-bench's model column, e.g. "qwen2 1.8B Q4_K - Medium"
};

std::string params_label(int64_t n) {
  return n >= 1'000'000'000 ? fmt::format("{:.1f}B", n / 1e9) : fmt::format("{:.0f}M", n / 1e6);
}

ModelStats model_stats(const Model& m) {
  const ModelFiles& f = m.files();
  const ModelConfig& c = m.config();
  const bool gguf = f.format() == FileFormat::Gguf;
  const std::string embd = gguf ? "token_embd.weight" : "model.embed_tokens.weight";
  const bool separate_head = f.find(gguf ? "output.weight" : "lm_head.weight") != nullptr;
  ModelStats s;
  std::map<std::string, uint64_t> by_type;
  for (const TensorRef* t : f.tensors()) {
    s.bytes += t->nbytes;
    by_type[dtype_name(t->dtype)] += t->nbytes;
    if (!t->name.ends_with("weight_scale_inv")) s.params += t->numel();
    if (f.is_mtp_tensor(t->name)) continue;
    const bool expert = t->name.find(gguf ? "_exps." : ".mlp.experts.") != std::string::npos;
    if (t->name == embd && separate_head) s.bytes_per_token += t->nbytes / uint64_t(c.n_vocab);
    else if (expert && c.n_expert > 0) s.bytes_per_token += t->nbytes * uint64_t(c.n_expert_used) / uint64_t(c.n_expert);
    else s.bytes_per_token += t->nbytes;
  }
  const auto ft = gguf ? f.gguf()->get_int("general.file_type") : std::nullopt;
  if (ft) {
    s.type = file_type_name(*ft);
  } else {
    auto most = std::max_element(by_type.begin(), by_type.end(),
                                 [](auto& x, auto& y) { return x.second < y.second; });
    s.type = "mostly " + most->first;
  }
  s.desc = fmt::format("{} {} {}", arch_name(c.arch), params_label(s.params), s.type);
  return s;
}

uint64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return uint64_t(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

struct Test {
  std::string name;
  int n_prompt = 0, n_gen = 0, depth = 0;
  std::vector<double> ts;  // tokens/s per repetition
  double mean() const {
    double m = 0;
    for (double x : ts) m += x;
    return ts.empty() ? 0 : m / double(ts.size());
  }
  double sd() const {
    if (ts.size() < 2) return 0;
    double m = mean(), v = 0;
    for (double x : ts) v += (x - m) * (x - m);
    return std::sqrt(v / double(ts.size() - 1));
  }
};

class Runner {
 public:
  Runner(Model& m, int64_t n_ctx, KvType kv_type)
      : m_(m), kv_(m.config(), n_ctx, kv_type), logits_(size_t(m.config().n_vocab)) {}
  KvCache& kv() { return kv_; }

  // Forward of `n` random tokens at positions [pos, pos + n), in batches of at most `batch`.
  double run(int64_t pos, int64_t n, int64_t batch) {
    std::uniform_int_distribution<int32_t> id(0, int32_t(m_.config().n_vocab - 1));
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n; i += batch) {
      const int64_t k = std::min(batch, n - i);
      tokens_.resize(size_t(k)), positions_.resize(size_t(k));
      for (int64_t j = 0; j < k; ++j) tokens_[size_t(j)] = id(rng_), positions_[size_t(j)] = int32_t(pos + i + j);
      m_.forward(tokens_, positions_, kv_, logits_.data(), false);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  Model& m_;
  KvCache kv_;
  std::vector<float> logits_;
  std::vector<int32_t> tokens_, positions_;
  std::mt19937 rng_{1234};
};

void print_md_row(const ModelStats& s, int threads, const Test& t) {
  fmt::print("| {:<30} | {:>9.2f} GiB | {:>7} | CPU     | {:>7} | {:>15} | {:>16} |\n", s.desc,
             s.bytes / 1073741824.0, params_label(s.params), threads, t.name,
             fmt::format("{:.2f} ± {:.2f}", t.mean(), t.sd()));
  std::fflush(stdout);
}

void run_bench(const BenchArgs& a) {
  if (a.threads < 0) fail("-t must be positive, not {}", a.threads);
  if (a.n_prompt < 0 || a.n_gen < 0 || a.depth < 0)
    fail("-p, -n and -d must not be negative (got {}, {}, {})", a.n_prompt, a.n_gen, a.depth);
  if (a.n_prompt == 0 && a.n_gen == 0) fail("nothing to run: -p and -n are both 0");
  if (a.reps < 1) fail("-r must be at least 1, not {}", a.reps);
  if (a.output != "md" && a.output != "json") fail("-o must be 'md' or 'json', not '{}'", a.output);
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  const int threads = ThreadPool::global().size();

  auto model = load_model(a.model, LoadOptions{.mla_expanded_min = a.mla_expanded_min});
  const ModelStats stats = model_stats(*model);
  const int64_t n_ctx = int64_t(a.depth) + std::max(a.n_prompt, a.n_gen);
  Runner run(*model, n_ctx, cache_type_or(a.cache_type, DType::F16));
  constexpr int64_t kBatch = 512;  // prefill batch (llama.cpp's default n_batch)
  if (a.depth > 0) {
    fmt::print(stderr, "bench: prefilling {} tokens (not timed)\n", a.depth);
    run.run(0, a.depth, kBatch);
  }

  std::vector<Test> tests;
  const std::string at = a.depth > 0 ? fmt::format(" @ d{}", a.depth) : "";
  if (a.n_prompt > 0) tests.push_back({fmt::format("pp{}{}", a.n_prompt, at), a.n_prompt, 0, a.depth, {}});
  if (a.n_gen > 0) tests.push_back({fmt::format("tg{}{}", a.n_gen, at), 0, a.n_gen, a.depth, {}});

  const bool md = a.output == "md";
  if (md) {
    fmt::print("| {:<30} | {:>13} | {:>7} | backend | threads | {:>15} | {:>16} |\n", "model", "size",
               "params", "test", "t/s");
    fmt::print("| {:-<30} | {:->13}:| {:->7}:| ------- | ------:| {:->15}:| {:->16}:|\n", "", "", "", "", "");
  }
  for (Test& t : tests) {
    const bool pp = t.n_prompt > 0;
    const int64_t n = pp ? t.n_prompt : t.n_gen;
    // warm-up: a whole pp run, or one token for tg (as llama-bench)
    run.run(a.depth, pp ? n : 1, pp ? n : 1);
    for (int r = 0; r < a.reps; ++r) {
      const double sec = run.run(a.depth, n, pp ? n : 1);
      t.ts.push_back(double(n) / sec);
    }
    const uint64_t rss = peak_rss_bytes(), kv = run.kv().bytes_per_token();
    const double gbps = pp ? 0 : double(stats.bytes_per_token) * t.mean() / 1e9;
    if (md) {
      print_md_row(stats, threads, t);
      continue;
    }
    nlohmann::ordered_json j = {{"model", stats.desc}, {"type", stats.type}, {"threads", threads},
                                {"test", t.name}, {"n_prompt", t.n_prompt}, {"n_gen", t.n_gen},
                                {"depth", t.depth}, {"avg_ts", t.mean()}, {"stddev_ts", t.sd()},
                                {"samples_ts", t.ts}, {"model_filename", a.model},
                                {"model_size", stats.bytes}, {"model_n_params", stats.params},
                                {"backend", "CPU"}, {"peak_rss_bytes", rss}, {"kv_bytes_per_token", kv}};
    if (!pp) j["weight_bytes_per_token"] = stats.bytes_per_token, j["gbps"] = gbps;
    fmt::print("{}\n", j.dump());
    std::fflush(stdout);
  }
  if (!md) return;
  fmt::print("\npeak RSS: {:.2f} GiB ({} bytes)\n", peak_rss_bytes() / 1073741824.0, peak_rss_bytes());
  fmt::print("KV cache: {} bytes/token ({})\n", run.kv().bytes_per_token(), dtype_name(run.kv().type()));
  for (const Test& t : tests) {
    if (t.n_gen == 0) continue;
    fmt::print("{}: weights read per token {:.3f} GiB ({} bytes) -> {:.2f} GB/s achieved (weights only)\n",
               t.name, stats.bytes_per_token / 1073741824.0, stats.bytes_per_token,
               double(stats.bytes_per_token) * t.mean() / 1e9);
  }
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "measure prompt processing and generation speed (like llama-bench)");
  cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
  cmd->add_option("-p,--n-prompt", a->n_prompt, "prompt tokens of the pp test (0: skip)")->capture_default_str();
  cmd->add_option("-n,--n-gen", a->n_gen, "generated tokens of the tg test (0: skip)")->capture_default_str();
  cmd->add_option("-d,--n-depth", a->depth, "tokens already in the KV cache before each test")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_option("-r,--repetitions", a->reps, "timed repetitions per test")->capture_default_str();
  cmd->add_option("-o,--output", a->output, "md (table) or json (one object per test per line)")->capture_default_str();
  add_cache_type_option(cmd, &a->cache_type);
  cmd->add_option("--mla-expanded-min", a->mla_expanded_min,
                  "deepseek2: batches of at least this many tokens use expanded (not absorbed) MLA");
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace whale::app
