// whale synth --shape NAME -o FILE --type T [--seed S] [--layers N] [--mla-layout split|kv_b]
//             [-t N]
// A GGUF file of random weights at a real model's shape (model/shapes.h), loadable by whale and
// llama.cpp, so benchmarks can be reproduced without downloading weights.
//
// Weights: matrices, biases and routers ~ N(0, 0.02²), norms 1. Every row comes from its own
// random stream, seeded by (seed, tensor name, row), so a file depends only on its arguments,
// not on the thread count. Rows are generated and quantized in parallel on the thread pool and
// written one chunk at a time: memory stays at ~64 MiB whatever the model size.
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <optional>

#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/quants.h"
#include "model/shapes.h"

namespace whale::app {

namespace {

struct SynthArgs {
  std::string shape, out, type;
  uint64_t seed = 1;
  std::optional<int64_t> layers;  // default: the shape's
  std::string mla_layout = "split";
  int threads = 0;
};

constexpr float kStd = 0.02f;

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// n values ~ N(0, std²) (Box-Muller on 2 × 24-bit uniforms).
void random_normal(uint64_t state, float std, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 2) {
    const uint64_t r = splitmix64(state);
    const float u1 = (float((r >> 40) & 0xFFFFFF) + 1.0f) * (1.0f / 16777216.0f);  // (0, 1]
    const float u2 = float((r >> 8) & 0xFFFFFF) * (1.0f / 16777216.0f);
    const float rad = std * std::sqrt(-2.0f * std::log(u1));
    const float ang = 2.0f * std::numbers::pi_v<float> * u2;
    out[i] = rad * std::cos(ang);
    if (i + 1 < n) out[i + 1] = rad * std::sin(ang);
  }
}

// The random model: row r of tensor `name` is the stream (seed, name, r). Split-layout
// attn_k_b / attn_v_b are cut from attn_kv_b's rows, so the same seed gives the same model in
// both MLA layouts.
class Weights {
 public:
  Weights(uint64_t seed, const ModelConfig& cfg) : seed_(seed), cfg_(cfg) {}

  // Rows [row0, row0 + n) of t in t.dtype into dst.
  void fill(const TensorPlan& t, int64_t row0, int64_t n, uint8_t* dst) const {
    const int64_t len = t.row_len();
    const uint64_t row_bytes = t.nbytes() / uint64_t(t.rows());
    if (t.name.ends_with("attn_k_b.weight")) return fill_k_b(t, row0, n, dst);
    const bool v_b = t.name.ends_with("attn_v_b.weight");
    const int64_t dn = cfg_.qk_nope_dim, dv = cfg_.v_head_dim;
    ThreadPool::global().parallel_for(n, std::max<int64_t>(1, 16384 / len), [&](int64_t b, int64_t e) {
      thread_local std::vector<float> row;
      row.resize(size_t(len));
      for (int64_t r = row0 + b; r < row0 + e; ++r) {
        if (t.role == TensorRole::Norm) std::fill(row.begin(), row.end(), 1.0f);
        else if (v_b) normal_row(kv_b_name(t.name), r / dv * (dn + dv) + dn + r % dv, row.data(), len);
        else normal_row(t.name, r, row.data(), len);
        quantize_row(t.dtype, row.data(), dst + uint64_t(r - row0) * row_bytes, len);
      }
    });
  }

 private:
  void normal_row(const std::string& name, int64_t row, float* out, int64_t n) const {
    uint64_t s = seed_;
    s = (splitmix64(s) ^ fnv1a(name)) + uint64_t(row) * 0xD1B54A32D192ED03ull;
    random_normal(splitmix64(s), kStd, out, n);
  }
  static std::string kv_b_name(const std::string& name) {
    return name.substr(0, name.find("attn_")) + "attn_kv_b.weight";
  }
  // attn_k_b [H, c, dn]: row (h, i) = column i of head h's K block of attn_kv_b ([dn, c]).
  void fill_k_b(const TensorPlan& t, int64_t row0, int64_t n, uint8_t* dst) const {
    const int64_t dn = cfg_.qk_nope_dim, dv = cfg_.v_head_dim, C = cfg_.kv_lora_rank;
    const uint64_t row_bytes = t.nbytes() / uint64_t(t.rows());
    const std::string src = kv_b_name(t.name);
    const int64_t h0 = row0 / C, h1 = (row0 + n - 1) / C + 1;
    ThreadPool::global().parallel_for(h1 - h0, 1, [&](int64_t b, int64_t e) {
      thread_local std::vector<float> block, row;
      block.resize(size_t(dn * C)), row.resize(size_t(dn));
      for (int64_t h = h0 + b; h < h0 + e; ++h) {
        for (int64_t j = 0; j < dn; ++j) normal_row(src, h * (dn + dv) + j, &block[size_t(j * C)], C);
        for (int64_t r = std::max(row0, h * C); r < std::min(row0 + n, (h + 1) * C); ++r) {
          for (int64_t j = 0; j < dn; ++j) row[size_t(j)] = block[size_t(j * C + r - h * C)];
          quantize_row(t.dtype, row.data(), dst + uint64_t(r - row0) * row_bytes, dn);
        }
      }
    });
  }

  uint64_t seed_;
  const ModelConfig& cfg_;
};

MlaLayout parse_layout(const std::string& s) {
  if (s == "split") return MlaLayout::Split;
  if (s == "kv_b") return MlaLayout::KvB;
  fail("--mla-layout must be 'split' or 'kv_b', not '{}'", s);
}

// llama.cpp decides between attn_q and attn_q_a/b by the layer count in some builds (26/27
// layers = V2-Lite without q_lora); say so when a --layers choice defeats that guess.
void warn_llama_cpp_layer_guess(const ModelConfig& c) {
  if (c.arch != Arch::Deepseek2) return;
  const bool lite_count = c.n_layer == 26 || c.n_layer == 27;
  if (c.q_lora_rank == 0 && !lite_count)
    fmt::print(stderr, "synth: note: llama.cpp builds of early 2025 only load deepseek2 without q_lora at 27 layers\n");
  if (c.q_lora_rank > 0 && lite_count)
    fmt::print(stderr, "synth: note: llama.cpp treats 26/27-layer deepseek2 as V2-Lite (no q_lora): it will not load this file\n");
}

void run_synth(const SynthArgs& a) {
  if (a.threads < 0) fail("--threads must be positive, not {}", a.threads);
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  const ShapeSpec& spec = find_shape(a.shape);
  const WeightType wt = parse_weight_type(a.type);
  const MlaLayout layout = parse_layout(a.mla_layout);
  if (a.out.empty()) fail("-o FILE is required");
  ModelConfig cfg = spec.config;
  if (a.layers) {
    if (*a.layers < 1 || *a.layers > 4096) fail("--layers must be 1..4096, not {}", *a.layers);
    cfg.n_layer = *a.layers;
    cfg.n_dense_lead = std::min(cfg.n_dense_lead, cfg.n_layer);
  }
  cfg.validate("shape " + spec.name);
  warn_llama_cpp_layer_guess(cfg);

  std::vector<TensorPlan> plan = gguf_tensor_plan(cfg, layout);
  assign_types(plan, wt, TypeContext{.n_layer = cfg.n_layer, .n_expert = cfg.n_expert,
                                     .has_output = !cfg.tie_embeddings});
  GgufWriter meta;
  set_gguf_metadata(meta, cfg, layout, fmt::format("whale synth {} (random weights)", spec.name),
                    wt.file_type);

  uint64_t total = 0, done = 0;
  int64_t params = 0;
  for (const TensorPlan& t : plan) total += t.nbytes(), params += t.rows() * t.row_len();
  fmt::print(stderr, "synth: {} ({} layers, {:.3f} B params) as {}: {} tensors, {:.2f} GiB -> {}\n",
             spec.name, cfg.n_layer, params / 1e9, wt.name, plan.size(), total / 1073741824.0, a.out);

  const Weights w{a.seed, cfg};
  int last_pct = -1;
  auto fill = [&](size_t i, int64_t row0, int64_t n, uint8_t* dst) {
    const TensorPlan& t = plan[i];
    w.fill(t, row0, n, dst);
    done += uint64_t(n) * (t.nbytes() / uint64_t(t.rows()));
    const int pct = int(100 * done / std::max<uint64_t>(total, 1));
    if (pct / 10 != last_pct / 10) fmt::print(stderr, "synth: {}%\n", pct);
    last_pct = pct;
  };
  write_gguf_streamed(meta, plan, fill, a.out);
}

}  // namespace

void register_synth(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  std::string shapes;
  for (auto& s : model_shapes()) shapes += fmt::format("\n  {:<22} {}", s.name, s.description);
  CLI::App* cmd = app.add_subcommand("synth", "write a random-weight GGUF file at a real model shape");
  cmd->footer("shapes:" + shapes);
  cmd->add_option("--shape", a->shape, "model shape (see below)")->required();
  cmd->add_option("-o,--output", a->out, "output GGUF file")->required();
  cmd->add_option("--type", a->type, "weight type: " + weight_type_names())->required();
  cmd->add_option("--seed", a->seed, "random seed")->capture_default_str();
  cmd->add_option("--layers", a->layers, "layer count (default: the shape's)");
  cmd->add_option("--mla-layout", a->mla_layout,
                  "deepseek2: split (attn_k_b + attn_v_b, current llama.cpp) or kv_b (one attn_kv_b, older llama.cpp)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->callback([a] { run_synth(*a); });
}

}  // namespace whale::app
