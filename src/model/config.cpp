#include "model/config.h"

#include "core/error.h"

namespace whale {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Deepseek2: return "deepseek2";
    case Arch::Qwen2: return "qwen2";
    case Arch::Llama: return "llama";
  }
  return "?";
}

void ModelConfig::validate(const std::string& src) const {
  auto positive = [&](const char* name, int64_t v, int64_t max) {
    if (v <= 0 || v > max) fail("{}: {} = {} is out of range (1..{})", src, name, v, max);
  };
  positive("vocab size", n_vocab, int64_t(1) << 24);
  positive("hidden size", n_embd, 1 << 20);
  positive("layer count", n_layer, 4096);
  positive("head count", n_head, 1 << 14);
  if (rms_eps <= 0 || rms_eps > 1) fail("{}: rms_norm_eps {} is out of range", src, rms_eps);
  if (!(rope_theta > 0)) fail("{}: rope_theta {} must be positive", src, rope_theta);
  if (rope_scaling.type != RopeScalingType::None && !(rope_scaling.factor > 0))
    fail("{}: rope_scaling factor {} must be positive", src, rope_scaling.factor);
  if (arch == Arch::Deepseek2) {
    positive("kv_lora_rank", kv_lora_rank, 1 << 16);
    positive("qk_rope_head_dim", qk_rope_dim, 1 << 12);
    positive("qk_nope_head_dim", qk_nope_dim, 1 << 12);
    positive("v_head_dim", v_head_dim, 1 << 12);
    if (qk_rope_dim % 2) fail("{}: qk_rope_head_dim {} must be even", src, qk_rope_dim);
    if (q_lora_rank < 0) fail("{}: q_lora_rank {} is negative", src, q_lora_rank);
    // Bounded so that n_shared × moe_intermediate and n_layer + n_mtp cannot overflow.
    if (n_expert_shared < 0 || n_expert_shared > 1024)
      fail("{}: n_shared_experts = {} is out of range (0..1024)", src, n_expert_shared);
    if (n_mtp_layers < 0 || n_mtp_layers > 4096)
      fail("{}: num_nextn_predict_layers = {} is out of range (0..4096)", src, n_mtp_layers);
    positive("moe_layer_freq", moe_layer_freq, 1 << 10);
    if (n_dense_lead < n_layer) {
      positive("n_routed_experts", n_expert, 1 << 16);
      positive("num_experts_per_tok", n_expert_used, n_expert);
      positive("moe_intermediate_size", n_ff_expert, 1 << 20);
      positive("n_group", n_group, n_expert);
      positive("topk_group", topk_group, n_group);
      if (n_expert % n_group) fail("{}: {} experts do not split into {} groups", src, n_expert, n_group);
      if (n_expert_used > topk_group * (n_expert / n_group))
        fail("{}: top-{} experts cannot come from {} groups of {}", src, n_expert_used,
             topk_group, n_expert / n_group);
      if (n_group > 1 && scoring == ScoringFunc::Sigmoid && n_expert / n_group < 2)
        fail("{}: group scores need at least 2 experts per group", src);
    }
    if (n_dense_lead > 0) positive("intermediate_size", n_ff, 1 << 20);
  } else {
    positive("intermediate_size", n_ff, 1 << 20);
    positive("num_key_value_heads", n_head_kv, n_head);
    positive("head_dim", head_dim, 1 << 12);
    if (n_head % n_head_kv) fail("{}: {} heads do not group into {} KV heads", src, n_head, n_head_kv);
    if (head_dim % 2) fail("{}: head_dim {} must be even", src, head_dim);
  }
}

}  // namespace whale
