// ModelConfig: every hyper-parameter the forward needs, as typed fields. Strings stop at the
// file readers (config_hf.cpp for config.json, config_gguf.cpp for GGUF metadata).
//
// Dimension legend used across model/:
//   V n_vocab, D n_embd (hidden), L n_layer, H n_head, Hkv n_head_kv, dh head_dim,
//   F n_ff (dense SwiGLU width), deepseek2 MLA: q_lora (0 = none), c kv_lora_rank,
//   dn qk_nope_head_dim, dr qk_rope_head_dim, dv v_head_dim; MoE: E n_expert, K n_expert_used,
//   Fe n_ff_expert, S n_expert_shared.
#pragma once

#include <cstdint>
#include <string>

namespace whale {

enum class Arch { Deepseek2, Qwen2, Llama };
const char* arch_name(Arch a);

// Which coordinates RoPE rotates together.
enum class RopeStyle {
  Adjacent,  // (x[2i], x[2i+1]): DeepSeek's complex view, ggml "normal" mode
  Neox,      // (x[i], x[i + d/2]): Hugging Face rotate_half, ggml NeoX mode
};

enum class RopeScalingType { None, Yarn, Llama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::None;
  double factor = 1;
  int64_t original_ctx = 0;
  // YaRN (DeepSeek)
  double beta_fast = 32, beta_slow = 1;
  double mscale_all_dim = 0;  // softmax-scale correction m = 0.1*mscale_all_dim*ln(factor)+1
  // llama3
  double low_freq_factor = 1, high_freq_factor = 4;
};

enum class ScoringFunc { Softmax, Sigmoid };

struct ModelConfig {
  Arch arch = Arch::Llama;
  int64_t n_vocab = 0, n_embd = 0, n_layer = 0, n_ff = 0;
  int64_t n_head = 0, n_head_kv = 0, head_dim = 0;  // dense attention (qwen2/llama)
  int64_t n_ctx_train = 0;
  double rms_eps = 1e-6;
  double rope_theta = 10000;
  RopeScaling rope_scaling;
  RopeStyle rope_style = RopeStyle::Neox;
  bool attn_bias = false;        // q/k/v biases (qwen2)
  bool tie_embeddings = false;   // lm_head shares token_embd

  // deepseek2: MLA
  int64_t q_lora_rank = 0, kv_lora_rank = 0, qk_nope_dim = 0, qk_rope_dim = 0, v_head_dim = 0;
  // deepseek2: MoE
  int64_t n_dense_lead = 0;      // first_k_dense_replace
  int64_t moe_layer_freq = 1;
  int64_t n_expert = 0, n_expert_used = 0, n_expert_shared = 0, n_ff_expert = 0;
  int64_t n_group = 1, topk_group = 1;
  ScoringFunc scoring = ScoringFunc::Softmax;
  bool norm_topk_prob = false;
  double routed_scaling = 1.0;
  int64_t n_mtp_layers = 0;      // num_nextn_predict_layers (weights after the last layer)

  int64_t bos_token = -1, eos_token = -1;

  bool is_moe_layer(int64_t il) const {
    return arch == Arch::Deepseek2 && n_expert > 0 && il >= n_dense_lead &&
           il % moe_layer_freq == 0;
  }
  // Values cached per token per layer: MLA latent (c + dr) or K and V of all KV heads.
  int64_t kv_values_per_token_per_layer() const {
    return arch == Arch::Deepseek2 ? kv_lora_rank + qk_rope_dim : 2 * n_head_kv * head_dim;
  }
  // Throws whale::Error naming `source` when a value is missing or inconsistent.
  void validate(const std::string& source) const;
};

ModelConfig config_from_hf_json(const std::string& config_json_path);

class GgufFile;
ModelConfig config_from_gguf(const GgufFile& gguf);

}  // namespace whale
