// config.json → ModelConfig, with the defaults of transformers' DeepseekV2Config,
// DeepseekV3Config, Qwen2Config and LlamaConfig for keys a file leaves out.
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "model/config.h"

namespace whale {

using json = nlohmann::json;

namespace {

struct Reader {
  const json& j;
  const std::string& path;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  int64_t integer(const char* key, int64_t def) const {
    if (!has(key)) return def;
    const json& v = j[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {  // 4096.0; range-checked first: casting 1e300 would be UB
      const double d = v.get<double>();
      if (d >= -0x1p63 && d < 0x1p63 && d == std::trunc(d)) return int64_t(d);
    }
    fail("{}: '{}' should be an integer", path, key);
  }
  double number(const char* key, double def) const {
    if (!has(key)) return def;
    if (!j[key].is_number()) fail("{}: '{}' should be a number", path, key);
    return j[key].get<double>();
  }
  bool boolean(const char* key, bool def) const {
    if (!has(key)) return def;
    if (!j[key].is_boolean()) fail("{}: '{}' should be true or false", path, key);
    return j[key].get<bool>();
  }
  std::string string(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    if (!j[key].is_string()) fail("{}: '{}' should be a string", path, key);
    return j[key].get<std::string>();
  }
  // bos/eos may be a single id or a list (Llama 3.1 lists several eos ids): take the first.
  int64_t token_id(const char* key) const {
    if (!has(key)) return -1;
    const json& v = j[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
    fail("{}: '{}' should be a token id", path, key);
  }
};

void read_rope_scaling(const Reader& r, ModelConfig& c) {
  if (!r.has("rope_scaling")) return;
  const json& rs = r.j["rope_scaling"];
  if (!rs.is_object()) fail("{}: 'rope_scaling' should be an object", r.path);
  Reader s{rs, r.path};
  std::string type = s.string("rope_type", s.string("type", ""));
  auto& sc = c.rope_scaling;
  if (type == "yarn") {
    sc.type = RopeScalingType::Yarn;
    sc.factor = s.number("factor", 1);
    sc.original_ctx = s.integer("original_max_position_embeddings", 4096);
    sc.beta_fast = s.number("beta_fast", 32);
    sc.beta_slow = s.number("beta_slow", 1);
    sc.mscale_all_dim = s.number("mscale_all_dim", 0);
  } else if (type == "llama3") {
    sc.type = RopeScalingType::Llama3;
    sc.factor = s.number("factor", 8);
    sc.original_ctx = s.integer("original_max_position_embeddings", 8192);
    sc.low_freq_factor = s.number("low_freq_factor", 1);
    sc.high_freq_factor = s.number("high_freq_factor", 4);
  } else if (type == "default" || type.empty()) {
  } else {
    fail("{}: rope_scaling type '{}' is not supported (yarn, llama3)", r.path, type);
  }
}

}  // namespace

ModelConfig config_from_hf_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path);
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail("{}: not a valid JSON object", path);
  Reader r{j, path};
  ModelConfig c;
  const std::string model_type = r.string("model_type", "");
  const bool v3 = model_type == "deepseek_v3";
  if (model_type == "deepseek_v2" || v3) {
    c.arch = Arch::Deepseek2;
    c.rope_style = RopeStyle::Adjacent;
    c.n_vocab = r.integer("vocab_size", v3 ? 129280 : 102400);
    c.n_embd = r.integer("hidden_size", v3 ? 7168 : 4096);
    c.n_ff = r.integer("intermediate_size", v3 ? 18432 : 11008);
    c.n_ff_expert = r.integer("moe_intermediate_size", v3 ? 2048 : 1407);
    c.n_layer = r.integer("num_hidden_layers", v3 ? 61 : 30);
    c.n_head = r.integer("num_attention_heads", v3 ? 128 : 32);
    c.n_expert_shared = r.integer("n_shared_experts", v3 ? 1 : 0);
    c.n_expert = r.integer("n_routed_experts", v3 ? 256 : 0);
    c.routed_scaling = r.number("routed_scaling_factor", v3 ? 2.5 : 1.0);
    c.kv_lora_rank = r.integer("kv_lora_rank", 512);
    c.q_lora_rank = r.integer("q_lora_rank", 1536);  // null → 0 (direct q_proj)
    if (r.j.contains("q_lora_rank") && r.j["q_lora_rank"].is_null()) c.q_lora_rank = 0;
    c.qk_rope_dim = r.integer("qk_rope_head_dim", 64);
    c.v_head_dim = r.integer("v_head_dim", 128);
    c.qk_nope_dim = r.integer("qk_nope_head_dim", 128);
    c.n_group = r.integer("n_group", v3 ? 8 : 1);
    c.topk_group = r.integer("topk_group", v3 ? 4 : 1);
    c.n_expert_used = r.integer("num_experts_per_tok", v3 ? 8 : 0);
    c.moe_layer_freq = r.integer("moe_layer_freq", 1);
    c.n_dense_lead = r.integer("first_k_dense_replace", v3 ? 3 : 0);
    r.boolean("norm_topk_prob", v3);  // type-checked only: see below
    std::string scoring = r.string("scoring_func", v3 ? "sigmoid" : "softmax");
    if (scoring == "softmax") c.scoring = ScoringFunc::Softmax;
    else if (scoring == "sigmoid") c.scoring = ScoringFunc::Sigmoid;
    else fail("{}: scoring_func '{}' is not supported (softmax, sigmoid)", path, scoring);
    // DeepSeek's inference code normalises the chosen weights exactly when scoring is sigmoid
    // (the released configs' norm_topk_prob agrees); its code is the reference.
    c.norm_topk_prob = c.scoring == ScoringFunc::Sigmoid;
    std::string topk_method = r.string("topk_method", v3 ? "noaux_tc" : "greedy");
    if (topk_method == "greedy" || topk_method == "gready") {
      c.n_group = c.topk_group = 1;  // HF ignores groups for plain greedy routing
    } else if (topk_method != "group_limited_greedy" && topk_method != "noaux_tc") {
      fail("{}: topk_method '{}' is not supported", path, topk_method);
    }
    c.n_mtp_layers = r.integer("num_nextn_predict_layers", 0);
    c.n_ctx_train = r.integer("max_position_embeddings", v3 ? 4096 : 2048);
  } else if (model_type == "qwen2" || model_type == "llama") {
    const bool qwen = model_type == "qwen2";
    c.arch = qwen ? Arch::Qwen2 : Arch::Llama;
    c.rope_style = RopeStyle::Neox;
    c.n_vocab = r.integer("vocab_size", qwen ? 151936 : 32000);
    c.n_embd = r.integer("hidden_size", 4096);
    c.n_ff = r.integer("intermediate_size", qwen ? 22016 : 11008);
    c.n_layer = r.integer("num_hidden_layers", 32);
    c.n_head = r.integer("num_attention_heads", 32);
    c.n_head_kv = r.integer("num_key_value_heads", c.n_head);
    c.head_dim = r.integer("head_dim", c.n_head > 0 ? c.n_embd / c.n_head : 0);
    c.attn_bias = qwen ? true : r.boolean("attention_bias", false);
    if (!qwen && r.boolean("mlp_bias", false)) fail("{}: mlp_bias is not supported", path);
    c.n_ctx_train = r.integer("max_position_embeddings", qwen ? 32768 : 2048);
  } else {
    fail("{}: model_type '{}' is not supported (deepseek_v2, deepseek_v3, qwen2, llama)", path,
         model_type);
  }
  c.rms_eps = r.number("rms_norm_eps", 1e-6);
  c.rope_theta = r.number("rope_theta", 10000);
  c.tie_embeddings = r.boolean("tie_word_embeddings", false);
  c.bos_token = r.token_id("bos_token_id");
  c.eos_token = r.token_id("eos_token_id");
  std::string act = r.string("hidden_act", "silu");
  if (act != "silu") fail("{}: hidden_act '{}' is not supported (silu)", path, act);
  read_rope_scaling(r, c);
  c.validate(path);
  return c;
}

}  // namespace whale
