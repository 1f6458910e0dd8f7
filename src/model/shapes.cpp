// Named model shapes, their GGUF layout and metadata, llama.cpp's per-tensor type rule, and the
// streamed GGUF writer. See shapes.h. Hyper-parameters come from the models' config.json files
// on Hugging Face (deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B / -7B, DeepSeek-V2-Lite,
// DeepSeek-V3); tensor and key names from llama.cpp's convert_hf_to_gguf.py output.
#include "model/shapes.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "kernels/quants.h"

namespace whale {

namespace {

ModelConfig qwen2(int64_t V, int64_t D, int64_t L, int64_t F, int64_t H, int64_t Hkv, bool tied) {
  ModelConfig c;
  c.arch = Arch::Qwen2;
  c.n_vocab = V, c.n_embd = D, c.n_layer = L, c.n_ff = F;
  c.n_head = H, c.n_head_kv = Hkv, c.head_dim = D / H;
  c.n_ctx_train = 131072, c.rms_eps = 1e-6, c.rope_theta = 10000;
  c.rope_style = RopeStyle::Neox;
  c.attn_bias = true, c.tie_embeddings = tied;
  c.bos_token = V - 2, c.eos_token = V - 1;
  return c;
}

// DeepSeek-V2/V3: dimensions shared by every released size (YaRN ×40 over 4096, θ 10000).
ModelConfig deepseek2(int64_t V, int64_t D, int64_t L, int64_t H, double mscale_all_dim) {
  ModelConfig c;
  c.arch = Arch::Deepseek2;
  c.n_vocab = V, c.n_embd = D, c.n_layer = L, c.n_head = H, c.n_head_kv = H;
  c.n_ctx_train = 163840, c.rms_eps = 1e-6, c.rope_theta = 10000;
  c.rope_style = RopeStyle::Adjacent;
  c.rope_scaling = RopeScaling{.type = RopeScalingType::Yarn, .factor = 40, .original_ctx = 4096,
                               .beta_fast = 32, .beta_slow = 1, .mscale_all_dim = mscale_all_dim};
  c.kv_lora_rank = 512, c.qk_nope_dim = 128, c.qk_rope_dim = 64, c.v_head_dim = 128;
  c.n_dense_lead = 1;
  c.bos_token = V - 2, c.eos_token = V - 1;
  return c;
}

std::vector<ShapeSpec> make_shapes() {
  std::vector<ShapeSpec> s;
  // Qwen2.5-1.5B ties its embeddings, the R1 distill does not (1.78 B parameters).
  s.push_back({"r1-distill-qwen-1.5b", "qwen2, hidden 1536, 28 layers, 12/2 heads",
               qwen2(151936, 1536, 28, 8960, 12, 2, false)});
  s.push_back({"r1-distill-qwen-7b", "qwen2, hidden 3584, 28 layers, 28/4 heads",
               qwen2(152064, 3584, 28, 18944, 28, 4, false)});
  ModelConfig v2 = deepseek2(102400, 2048, 27, 16, 0.707);
  v2.n_ff = 10944;
  v2.n_expert = 64, v2.n_expert_used = 6, v2.n_expert_shared = 2, v2.n_ff_expert = 1408;
  v2.scoring = ScoringFunc::Softmax;
  s.push_back({"deepseek-v2-lite", "deepseek2, hidden 2048, 27 layers, MLA, 64 experts top-6 + 2 shared", v2});
  ModelConfig v3 = deepseek2(129280, 7168, 4, 128, 1.0);
  v3.n_ff = 18432, v3.q_lora_rank = 1536;
  v3.n_expert = 256, v3.n_expert_used = 8, v3.n_expert_shared = 1, v3.n_ff_expert = 2048;
  v3.n_group = 8, v3.topk_group = 4, v3.scoring = ScoringFunc::Sigmoid, v3.norm_topk_prob = true;
  v3.routed_scaling = 2.5;
  s.push_back({"deepseek-v3-slice", "deepseek2, DeepSeek-V3 dimensions, 4 layers (1 dense + 3 MoE of 256 experts top-8)", v3});
  // Tiny shapes for tests: rows of 256 (K-quants apply), plus awkward widths that force the
  // fallbacks (attn_k_b rows of 64: Q8_0; expert rows of 80: F16).
  s.push_back({"tiny-qwen2", "qwen2 test model, hidden 256, 4 layers, tied embeddings",
               qwen2(512, 256, 4, 512, 4, 2, true)});
  ModelConfig t = deepseek2(512, 256, 3, 4, 1.0);
  t.n_ff = 512, t.q_lora_rank = 256, t.kv_lora_rank = 256, t.qk_nope_dim = 64, t.qk_rope_dim = 32,
  t.v_head_dim = 64;
  t.n_expert = 16, t.n_expert_used = 4, t.n_expert_shared = 1, t.n_ff_expert = 80;
  t.n_group = 4, t.topk_group = 2, t.scoring = ScoringFunc::Sigmoid, t.norm_topk_prob = true;
  t.routed_scaling = 2.5;
  s.push_back({"tiny-deepseek2", "deepseek2 (V3-style) test model, hidden 256, 3 layers, 16 experts", t});
  for (auto& sh : s) sh.config.validate("shape " + sh.name);
  return s;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

int64_t layer_of(const std::string& name) {
  int layer = 0;
  return std::sscanf(name.c_str(), "blk.%d.", &layer) == 1 ? layer : 0;
}

// llama.cpp's choice of layers that get more bits in the _M mixes: the first and last eighth
// and every third layer in between.
bool use_more_bits(int64_t i, int64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// GPT-2's byte-level alphabet: byte b as the code point its BPE vocabularies use.
std::string byte_token(int b) {
  int cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s += char(cp);
  else s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  return s;
}

}  // namespace

const std::vector<ShapeSpec>& model_shapes() {
  static const std::vector<ShapeSpec> shapes = make_shapes();
  return shapes;
}

const ShapeSpec& find_shape(const std::string& name) {
  std::string names;
  for (auto& s : model_shapes()) {
    if (s.name == name) return s;
    names += (names.empty() ? "" : ", ") + s.name;
  }
  fail("unknown shape '{}' (known: {})", name, names);
}

// ---- weight types ---------------------------------------------------------------------------

namespace {
const WeightType kWeightTypes[] = {
    {"F32", DType::F32, TypeMix::None, 0, "all F32"},     {"F16", DType::F16, TypeMix::None, 1, "F16"},
    {"BF16", DType::BF16, TypeMix::None, 32, "BF16"},     {"Q8_0", DType::Q8_0, TypeMix::None, 7, "Q8_0"},
    // The blocks of 32 as llama-quantize makes them (output head in Q6_K).
    {"Q4_0", DType::Q4_0, TypeMix::Legacy, 2, "Q4_0"},   {"Q4_1", DType::Q4_1, TypeMix::Legacy, 3, "Q4_1"},
    {"Q5_0", DType::Q5_0, TypeMix::Legacy, 8, "Q5_0"},   {"Q5_1", DType::Q5_1, TypeMix::Legacy, 9, "Q5_1"},
    // Pure K-quant files have no llama_ftype of their own: llama.cpp's "mostly" ids are used.
    {"Q4_K", DType::Q4_K, TypeMix::None, 14, "Q4_K - Small"},
    {"Q5_K", DType::Q5_K, TypeMix::None, 16, "Q5_K - Small"},
    {"Q6_K", DType::Q6_K, TypeMix::None, 18, "Q6_K"},
    {"Q4_K_M", DType::Q4_K, TypeMix::Q4_K_M, 15, "Q4_K - Medium"},
    {"Q5_K_M", DType::Q5_K, TypeMix::Q5_K_M, 17, "Q5_K - Medium"},
};
}  // namespace

WeightType parse_weight_type(const std::string& s) {
  std::string up = s;
  for (char& ch : up) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  for (const WeightType& t : kWeightTypes)
    if (t.name == up) return t;
  fail("unknown weight type '{}' (supported: {})", s, weight_type_names());
}

std::string weight_type_names() {
  std::string out;
  for (const WeightType& t : kWeightTypes) out += (out.empty() ? "" : ", ") + t.name;
  return out;
}

std::string file_type_name(int64_t ft) {
  for (const WeightType& t : kWeightTypes)
    if (t.file_type == ft) return t.file_type_name;
  return fmt::format("file type {}", ft);
}

bool is_quantizable(const std::string& name, size_t n_dims) {
  return n_dims >= 2 && name.ends_with("weight") && !contains(name, "_norm.weight") &&
         !contains(name, "ffn_gate_inp.weight");
}

// llama.cpp's llama_tensor_get_type (src/llama-quant.cpp), the branches that matter for
// Q4_K_M / Q5_K_M and Q4_0 / Q4_1 / Q5_0 / Q5_1: the output head (or token_embd when tied) in
// Q6_K; for the K_M mixes attn_v and every ffn_down* (dense, routed experts, shared experts;
// layer taken from the name) in Q6_K where use_more_bits; the 8-expert (Mixtral) bumps.
// attn_kv_b follows the attn_v rule as current llama.cpp has it (builds of early 2025 leave it
// at the base type). Then tensor_type_fallback, for rows that do not split into blocks: Q5_0 for
// Q4_K, Q5_1 for Q5_K, Q8_0 for Q6_K, and F16 when the row is not a multiple of 32 either
// (the blocks of 32 go straight to F16). Pure types skip the rule (llama-quantize --pure) but
// keep the fallback.
DType choose_tensor_type(const WeightType& t, const std::string& name, int64_t row_len,
                         const TypeContext& ctx) {
  DType ty = t.base;
  if (t.mix != TypeMix::None) {
    const int64_t il = layer_of(name), n = std::max(ctx.n_layer, il + 1);
    const bool more = use_more_bits(il, n);
    const bool k_mix = t.mix == TypeMix::Q4_K_M || t.mix == TypeMix::Q5_K_M;
    if (name == "output.weight" || (!ctx.has_output && name == "token_embd.weight")) {
      ty = DType::Q6_K;  // rows that do not split into super-blocks: Q8_0 (or F16) below
    } else if (name == "token_embd.weight") {
      // the base type
    } else if (contains(name, "attn_v.weight") || contains(name, "attn_kv_b.weight")) {
      if (more && k_mix) ty = DType::Q6_K;
      if (ctx.n_expert == 8) ty = DType::Q8_0;
    } else if (contains(name, "attn_k.weight")) {
      if (ctx.n_expert == 8) ty = DType::Q8_0;
    } else if (contains(name, "ffn_down")) {
      if (more && k_mix) ty = DType::Q6_K;
    } else if (contains(name, "attn_output.weight")) {
      if (ctx.n_expert == 8 && t.mix == TypeMix::Q4_K_M) ty = DType::Q5_K;
    } else if (contains(name, "attn_qkv.weight")) {
      if (k_mix) ty = t.mix == TypeMix::Q4_K_M ? DType::Q5_K : DType::Q6_K;
    }
  }
  if (row_len % dtype_info(ty).block_elems == 0) return ty;
  const DType fallback = ty == DType::Q4_K   ? DType::Q5_0
                         : ty == DType::Q5_K ? DType::Q5_1
                         : ty == DType::Q6_K ? DType::Q8_0
                                             : ty;
  return row_len % dtype_info(fallback).block_elems == 0 ? fallback : DType::F16;
}

void assign_types(std::vector<TensorPlan>& plan, const WeightType& t, const TypeContext& ctx) {
  for (TensorPlan& p : plan)
    p.dtype = p.role == TensorRole::Matrix ? choose_tensor_type(t, p.name, p.row_len(), ctx) : DType::F32;
}

// ---- tensors and metadata -------------------------------------------------------------------

int64_t TensorPlan::rows() const {
  int64_t r = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) r *= shape[i];
  return r;
}

uint64_t TensorPlan::nbytes() const {
  return uint64_t(rows()) * dtype_bytes(dtype, uint64_t(row_len())).value();
}

std::vector<TensorPlan> gguf_tensor_plan(const ModelConfig& c, MlaLayout layout) {
  std::vector<TensorPlan> p;
  auto add = [&](std::string name, std::vector<int64_t> shape, TensorRole role = TensorRole::Matrix) {
    p.push_back({std::move(name), std::move(shape), role});
  };
  const int64_t D = c.n_embd, H = c.n_head;
  add("token_embd.weight", {c.n_vocab, D});
  for (int64_t il = 0; il < c.n_layer; ++il) {
    const std::string b = fmt::format("blk.{}.", il);
    add(b + "attn_norm.weight", {D}, TensorRole::Norm);
    if (c.arch == Arch::Deepseek2) {
      const int64_t dn = c.qk_nope_dim, dr = c.qk_rope_dim, dv = c.v_head_dim, C = c.kv_lora_rank;
      if (c.q_lora_rank > 0) {
        add(b + "attn_q_a.weight", {c.q_lora_rank, D});
        add(b + "attn_q_a_norm.weight", {c.q_lora_rank}, TensorRole::Norm);
        add(b + "attn_q_b.weight", {H * (dn + dr), c.q_lora_rank});
      } else {
        add(b + "attn_q.weight", {H * (dn + dr), D});
      }
      add(b + "attn_kv_a_mqa.weight", {C + dr, D});
      add(b + "attn_kv_a_norm.weight", {C}, TensorRole::Norm);
      if (layout == MlaLayout::Split) {
        add(b + "attn_k_b.weight", {H, C, dn});
        add(b + "attn_v_b.weight", {H, dv, C});
      } else {
        add(b + "attn_kv_b.weight", {H * (dn + dv), C});
      }
      add(b + "attn_output.weight", {D, H * dv});
    } else {
      const int64_t qd = H * c.head_dim, kvd = c.n_head_kv * c.head_dim;
      add(b + "attn_q.weight", {qd, D});
      add(b + "attn_k.weight", {kvd, D});
      add(b + "attn_v.weight", {kvd, D});
      if (c.attn_bias) {
        add(b + "attn_q.bias", {qd}, TensorRole::Bias);
        add(b + "attn_k.bias", {kvd}, TensorRole::Bias);
        add(b + "attn_v.bias", {kvd}, TensorRole::Bias);
      }
      add(b + "attn_output.weight", {D, qd});
    }
    add(b + "ffn_norm.weight", {D}, TensorRole::Norm);
    if (!c.is_moe_layer(il)) {
      add(b + "ffn_gate.weight", {c.n_ff, D});
      add(b + "ffn_up.weight", {c.n_ff, D});
      add(b + "ffn_down.weight", {D, c.n_ff});
      continue;
    }
    const int64_t E = c.n_expert, Fe = c.n_ff_expert, Fs = c.n_expert_shared * Fe;
    add(b + "ffn_gate_inp.weight", {E, D}, TensorRole::Router);
    if (c.scoring == ScoringFunc::Sigmoid) add(b + "exp_probs_b.bias", {E}, TensorRole::Bias);
    add(b + "ffn_gate_exps.weight", {E, Fe, D});
    add(b + "ffn_up_exps.weight", {E, Fe, D});
    add(b + "ffn_down_exps.weight", {E, D, Fe});
    if (Fs > 0) {
      add(b + "ffn_gate_shexp.weight", {Fs, D});
      add(b + "ffn_up_shexp.weight", {Fs, D});
      add(b + "ffn_down_shexp.weight", {D, Fs});
    }
  }
  add("output_norm.weight", {D}, TensorRole::Norm);
  if (!c.tie_embeddings) add("output.weight", {c.n_vocab, D});
  return p;
}

void set_gguf_metadata(GgufWriter& w, const ModelConfig& c, MlaLayout layout,
                       const std::string& model_name, uint32_t file_type) {
  const std::string a = arch_name(c.arch);
  auto u32 = [&](const char* k, int64_t v) { w.set_u32(a + "." + k, uint32_t(v)); };
  auto f32 = [&](const char* k, double v) { w.set_f32(a + "." + k, float(v)); };
  w.set_string("general.architecture", a);
  w.set_string("general.type", "model");
  w.set_string("general.name", model_name);
  u32("context_length", c.n_ctx_train);
  u32("embedding_length", c.n_embd);
  u32("block_count", c.n_layer);
  u32("feed_forward_length", c.n_ff);
  u32("attention.head_count", c.n_head);
  f32("rope.freq_base", c.rope_theta);
  f32("attention.layer_norm_rms_epsilon", c.rms_eps);
  if (c.arch != Arch::Deepseek2) {
    u32("attention.head_count_kv", c.n_head_kv);
  } else {
    const bool split = layout == MlaLayout::Split;
    const int64_t C = c.kv_lora_rank, dr = c.qk_rope_dim;
    // Split files describe attention as MQA over the latent (one KV head of c + dr / c values)
    // and keep the per-head sizes in the _mla keys; kv_b files state the per-head sizes.
    u32("attention.head_count_kv", split ? 1 : c.n_head);
    u32("vocab_size", c.n_vocab);
    u32("leading_dense_block_count", c.n_dense_lead);
    u32("attention.q_lora_rank", c.q_lora_rank);  // 0 = none (the converter omits it for V2-Lite)
    u32("attention.kv_lora_rank", C);
    u32("attention.key_length", split ? C + dr : c.qk_nope_dim + dr);
    u32("attention.value_length", split ? C : c.v_head_dim);
    if (split) {
      u32("attention.key_length_mla", c.qk_nope_dim + dr);
      u32("attention.value_length_mla", c.v_head_dim);
    }
    u32("expert_feed_forward_length", c.n_ff_expert);
    u32("expert_count", c.n_expert);
    u32("expert_shared_count", c.n_expert_shared);
    f32("expert_weights_scale", c.routed_scaling);
    if (c.norm_topk_prob) w.set_bool(a + ".expert_weights_norm", true);
    u32("expert_gating_func", c.scoring == ScoringFunc::Sigmoid ? 2 : 1);
    u32("expert_used_count", c.n_expert_used);
    u32("expert_group_count", c.n_group);
    u32("expert_group_used_count", c.topk_group);
    u32("rope.dimension_count", dr);
  }
  if (c.rope_scaling.type == RopeScalingType::Yarn) {
    const RopeScaling& r = c.rope_scaling;
    w.set_string(a + ".rope.scaling.type", "yarn");
    f32("rope.scaling.factor", r.factor);
    u32("rope.scaling.original_context_length", r.original_ctx);
    f32("rope.scaling.yarn_beta_fast", r.beta_fast);
    f32("rope.scaling.yarn_beta_slow", r.beta_slow);
    f32("rope.scaling.yarn_log_multiplier", 0.1 * r.mscale_all_dim);  // llama.cpp divides by 0.1
  }
  w.set_u32("general.file_type", file_type);
  w.set_u32("general.quantization_version", 2);

  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int64_t id = 0; id < c.n_vocab; ++id) {
    const bool special = id == c.bos_token || id == c.eos_token;
    tokens.push_back(id < 256 ? byte_token(int(id))
                     : id == c.bos_token ? "<|bos|>"
                     : id == c.eos_token ? "<|eos|>"
                                         : fmt::format("t{}", id));
    types.push_back(special ? 3 : 1);  // llama_token_type: 1 normal, 3 control
  }
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "default");
  w.set_array_str("tokenizer.ggml.tokens", tokens);
  w.set_array_i32("tokenizer.ggml.token_type", types);
  w.set_array_str("tokenizer.ggml.merges", {});
  w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(c.bos_token));
  w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(c.eos_token));
  w.set_bool("tokenizer.ggml.add_bos_token", c.arch == Arch::Deepseek2);
}

// ---- streamed writing -----------------------------------------------------------------------

void write_gguf_streamed(const GgufWriter& meta, const std::vector<TensorPlan>& plan,
                         const FillRows& fill, const std::string& path) {
  GgufWriter w = meta;
  for (size_t i = 0; i < plan.size(); ++i) {
    const TensorPlan& t = plan[i];
    w.add_tensor_stream(t.name, t.dtype, t.shape, t.nbytes(),
                        [&fill, i](int64_t row0, int64_t n, uint8_t* dst) { fill(i, row0, n, dst); });
  }
  w.write(path);
}

}  // namespace whale
