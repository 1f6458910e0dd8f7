// GGUF metadata → ModelConfig, with llama.cpp's key names and its defaults for absent keys.
#include <cmath>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/config.h"

namespace whale {

namespace {

struct Keys {
  const GgufFile& g;
  std::string arch;

  std::string key(const char* suffix) const { return arch + "." + suffix; }
  int64_t req_int(const char* suffix) const {
    auto v = g.get_int(key(suffix));
    if (!v) fail("{}: missing GGUF key '{}'", g.path(), key(suffix));
    return *v;
  }
  int64_t opt_int(const char* suffix, int64_t def) const {
    return g.get_int(key(suffix)).value_or(def);
  }
  double opt_float(const char* suffix, double def) const {
    return g.get_float(key(suffix)).value_or(def);
  }
};

}  // namespace

ModelConfig config_from_gguf(const GgufFile& g) {
  auto arch = g.get_string("general.architecture");
  if (!arch) fail("{}: missing GGUF key 'general.architecture'", g.path());
  Keys k{g, *arch};
  ModelConfig c;
  if (*arch == "deepseek2") {
    c.arch = Arch::Deepseek2;
    c.rope_style = RopeStyle::Adjacent;
  } else if (*arch == "qwen2") {
    c.arch = Arch::Qwen2;
    c.rope_style = RopeStyle::Neox;
    c.attn_bias = true;
  } else if (*arch == "llama") {
    c.arch = Arch::Llama;
    c.rope_style = RopeStyle::Adjacent;  // the converter permuted Q/K rows to make pairs adjacent
  } else {
    fail("{}: architecture '{}' is not supported (deepseek2, qwen2, llama)", g.path(), *arch);
  }
  c.n_embd = k.req_int("embedding_length");
  c.n_layer = k.req_int("block_count");
  // llama.cpp counts multi-token-prediction blocks in block_count; the forward skips them.
  c.n_mtp_layers = k.opt_int("nextn_predict_layers", 0);
  if (c.n_mtp_layers < 0 || c.n_mtp_layers >= c.n_layer)
    fail("{}: nextn_predict_layers = {} must be in 0..block_count-1 ({})", g.path(), c.n_mtp_layers,
         c.n_layer - 1);
  c.n_layer -= c.n_mtp_layers;
  c.n_head = k.req_int("attention.head_count");
  c.n_ff = k.opt_int("feed_forward_length", 0);
  c.n_ctx_train = k.opt_int("context_length", 0);
  c.rms_eps = k.opt_float("attention.layer_norm_rms_epsilon", 1e-6);
  c.rope_theta = k.opt_float("rope.freq_base", 10000);
  c.n_vocab = k.opt_int("vocab_size", 0);
  if (c.n_vocab == 0) {
    const GgufValue* toks = g.find("tokenizer.ggml.tokens");
    if (toks && toks->type == GgufType::ARRAY) c.n_vocab = int64_t(toks->count);
  }
  c.bos_token = g.get_int("tokenizer.ggml.bos_token_id").value_or(-1);
  c.eos_token = g.get_int("tokenizer.ggml.eos_token_id").value_or(-1);

  if (auto type = g.get_string(k.key("rope.scaling.type"))) {
    auto& sc = c.rope_scaling;
    if (*type == "yarn") {
      sc.type = RopeScalingType::Yarn;
      sc.factor = k.opt_float("rope.scaling.factor", 1);
      sc.original_ctx = k.opt_int("rope.scaling.original_context_length", 4096);
      sc.beta_fast = k.opt_float("rope.scaling.yarn_beta_fast", 32);
      sc.beta_slow = k.opt_float("rope.scaling.yarn_beta_slow", 1);
      // The converter writes 0.1 * mscale_all_dim.
      sc.mscale_all_dim = k.opt_float("rope.scaling.yarn_log_multiplier", 0) / 0.1;
    } else if (*type != "none" && *type != "linear") {
      fail("{}: rope scaling type '{}' is not supported", g.path(), *type);
    } else if (*type == "linear") {
      fail("{}: linear rope scaling is not supported", g.path());
    }
  }

  if (c.arch == Arch::Deepseek2) {
    c.q_lora_rank = k.opt_int("attention.q_lora_rank", 0);  // absent and 0 both mean none
    c.kv_lora_rank = k.req_int("attention.kv_lora_rank");
    c.qk_rope_dim = k.req_int("rope.dimension_count");
    // key_length_mla / value_length_mla are the per-head dims of the naive form; older files
    // (single attn_kv_b) store them in key_length / value_length.
    auto mla_or_plain = [&](const char* mla, const char* plain) {
      auto v = g.get_int(k.key(mla));
      return v ? *v : k.req_int(plain);
    };
    int64_t key_len = mla_or_plain("attention.key_length_mla", "attention.key_length");
    c.v_head_dim = mla_or_plain("attention.value_length_mla", "attention.value_length");
    if (c.qk_rope_dim <= 0 || key_len <= c.qk_rope_dim)  // also keeps the subtraction in range
      fail("{}: attention key_length {} must exceed rope.dimension_count {}", g.path(), key_len,
           c.qk_rope_dim);
    c.qk_nope_dim = key_len - c.qk_rope_dim;
    c.n_dense_lead = k.opt_int("leading_dense_block_count", 0);
    c.n_expert = k.opt_int("expert_count", 0);
    c.n_expert_used = k.opt_int("expert_used_count", 0);
    c.n_expert_shared = k.opt_int("expert_shared_count", 0);
    c.n_ff_expert = k.opt_int("expert_feed_forward_length", 0);
    c.n_group = std::max<int64_t>(1, k.opt_int("expert_group_count", 1));
    c.topk_group = std::max<int64_t>(1, k.opt_int("expert_group_used_count", 1));
    c.routed_scaling = k.opt_float("expert_weights_scale", 1.0);
    int64_t gating = k.opt_int("expert_gating_func", 1);
    if (gating == 1) c.scoring = ScoringFunc::Softmax;
    else if (gating == 2) c.scoring = ScoringFunc::Sigmoid;
    else fail("{}: expert_gating_func {} is not supported (1 softmax, 2 sigmoid)", g.path(), gating);
    // DeepSeek's inference code normalises exactly when scoring is sigmoid, whatever
    // expert_weights_norm says (the converter writes it consistently for released models).
    g.get_bool(k.key("expert_weights_norm"));
    c.norm_topk_prob = c.scoring == ScoringFunc::Sigmoid;
    c.n_head_kv = c.n_head;
  } else {
    c.n_head_kv = k.opt_int("attention.head_count_kv", c.n_head);
    c.head_dim = k.opt_int("attention.key_length", c.n_head > 0 ? c.n_embd / c.n_head : 0);
  }
  c.validate(g.path());
  return c;
}

}  // namespace whale
