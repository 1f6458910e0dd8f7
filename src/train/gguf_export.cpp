// HF-named parameters → GGUF: see gguf_export.h.
#include "train/gguf_export.h"

#include <cstring>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/shapes.h"

namespace whale::train {

namespace {

using json = nlohmann::json;

// GGUF tensor suffix (after "blk.N.") → Hugging Face suffix (after "model.layers.N.").
const std::map<std::string, std::string>& layer_names() {
  static const std::map<std::string, std::string> m = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_q_a.weight", "self_attn.q_a_proj.weight"},
      {"attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"},
      {"attn_q_b.weight", "self_attn.q_b_proj.weight"},
      {"attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"},
      {"attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
      {"ffn_gate_inp.weight", "mlp.gate.weight"},
      {"exp_probs_b.bias", "mlp.gate.e_score_correction_bias"},
      {"ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"},
      {"ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"},
      {"ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"},
      // MTP block only (llama.cpp's DeepSeek/GLM next-n names); embedding and head are shared.
      {"nextn.eh_proj.weight", "eh_proj.weight"},
      {"nextn.enorm.weight", "enorm.weight"},
      {"nextn.hnorm.weight", "hnorm.weight"},
      {"nextn.shared_head_norm.weight", "shared_head.norm.weight"},
  };
  return m;
}

class Source {
 public:
  explicit Source(const std::vector<Param>& params) {
    for (const Param& p : params) by_name_[p.name] = &p;
  }
  const Param& get(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail("GGUF export: the model has no parameter '{}'", name);
    if (it->second->shape != shape)
      fail("GGUF export: parameter '{}' has shape [{}], expected [{}]", name,
           fmt::join(it->second->shape, ", "), fmt::join(shape, ", "));
    return *it->second;
  }

 private:
  std::map<std::string, const Param*> by_name_;
};

// The f32 data of one GGUF tensor of the plan.
std::vector<float> tensor_data(const ModelConfig& c, const TensorPlan& t, const Source& src) {
  if (t.name == "token_embd.weight") return src.get("model.embed_tokens.weight", t.shape).value;
  if (t.name == "output_norm.weight") return src.get("model.norm.weight", t.shape).value;
  if (t.name == "output.weight") return src.get("lm_head.weight", t.shape).value;
  int il = -1, len = 0;
  if (std::sscanf(t.name.c_str(), "blk.%d.%n", &il, &len) != 1 || len == 0)
    fail("GGUF export: unexpected tensor {}", t.name);
  const std::string suffix = t.name.substr(size_t(len));
  const std::string hf = fmt::format("model.layers.{}.", il);
  if (auto it = layer_names().find(suffix); it != layer_names().end())
    return src.get(hf + it->second, t.shape).value;

  const int64_t H = c.n_head, dn = c.qk_nope_dim, dv = c.v_head_dim, C = c.kv_lora_rank;
  if (suffix == "attn_k_b.weight" || suffix == "attn_v_b.weight") {
    // kv_b_proj [H·(dn+dv), C]: per head dn K rows then dv V rows.
    const std::vector<float>& kv = src.get(hf + "self_attn.kv_b_proj.weight", {H * (dn + dv), C}).value;
    std::vector<float> out(size_t(H * C * (suffix[5] == 'k' ? dn : dv)));
    for (int64_t h = 0; h < H; ++h) {
      const float* head = &kv[size_t(h * (dn + dv) * C)];
      if (suffix[5] == 'k') {  // attn_k_b [H, C, dn]: transposed K block
        for (int64_t i = 0; i < C; ++i)
          for (int64_t j = 0; j < dn; ++j) out[size_t((h * C + i) * dn + j)] = head[j * C + i];
      } else {  // attn_v_b [H, dv, C]: the V block as is
        std::memcpy(&out[size_t(h * dv * C)], head + dn * C, size_t(dv * C) * 4);
      }
    }
    return out;
  }
  for (const char* proj : {"gate", "up", "down"}) {
    if (suffix != fmt::format("ffn_{}_exps.weight", proj)) continue;
    const std::vector<int64_t> one(t.shape.begin() + 1, t.shape.end());
    std::vector<float> out;
    out.reserve(size_t(t.shape[0] * one[0] * one[1]));
    for (int64_t e = 0; e < t.shape[0]; ++e) {
      const auto& v = src.get(fmt::format("{}mlp.experts.{}.{}_proj.weight", hf, e, proj), one).value;
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
  fail("GGUF export: no source for tensor {}", t.name);
}

void set_tokenizer(GgufWriter& w, const std::string& dir) {
  auto read_json = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open", path);
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail("{}: not a valid JSON object", path);
    return j;
  };
  const json tok = read_json(dir + "/tokenizer.json");
  const json cfg = read_json(dir + "/tokenizer_config.json");
  std::map<int64_t, std::pair<std::string, int32_t>> by_id;  // id → (text, llama token type)
  for (auto& [text, id] : tok.at("model").at("vocab").items()) by_id[id.get<int64_t>()] = {text, 1};
  for (const json& a : tok.at("added_tokens"))
    by_id[a.at("id").get<int64_t>()] = {a.at("content").get<std::string>(), a.value("special", false) ? 3 : 4};
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (auto& [id, tt] : by_id) {
    if (id != int64_t(tokens.size())) fail("{}/tokenizer.json: token ids are not contiguous at {}", dir, id);
    tokens.push_back(tt.first), types.push_back(tt.second);
  }
  std::vector<std::string> merges;
  for (const json& m : tok.at("model").at("merges"))
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  auto token_id = [&](const char* key) -> int64_t {
    if (!cfg.contains(key) || cfg[key].is_null()) return -1;
    const std::string content = cfg[key].is_string() ? cfg[key].get<std::string>() : cfg[key].value("content", "");
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == content) return int64_t(i);
    fail("{}/tokenizer_config.json: {} '{}' is not in the vocabulary", dir, key, content);
  };
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "qwen2");  // the trainer's pre-tokenizer: Qwen2's regex
  w.set_array_str("tokenizer.ggml.tokens", tokens);
  w.set_array_i32("tokenizer.ggml.token_type", types);
  w.set_array_str("tokenizer.ggml.merges", merges);
  if (const int64_t b = token_id("bos_token"); b >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(b));
  if (const int64_t e = token_id("eos_token"); e >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(e));
  if (const int64_t p = token_id("pad_token"); p >= 0) w.set_u32("tokenizer.ggml.padding_token_id", uint32_t(p));
  w.set_bool("tokenizer.ggml.add_bos_token", cfg.value("add_bos_token", true));
  w.set_bool("tokenizer.ggml.add_eos_token", cfg.value("add_eos_token", false));
  if (cfg.contains("chat_template") && cfg["chat_template"].is_string())
    w.set_string("tokenizer.chat_template", cfg["chat_template"].get<std::string>());
}

}  // namespace

void export_gguf(const ModelConfig& cfg, const std::vector<Param>& params, const std::string& path,
                 const GgufExportOptions& opt) {
  if (cfg.arch != Arch::Deepseek2) fail("GGUF export: only deepseek2 models are trained");
  // llama.cpp counts MTP blocks in block_count (n_layer = block_count - nextn_predict_layers):
  // the plan of a model with n_layer + n_mtp blocks names the MTP block's attention and MoE
  // tensors blk.<n_layer>.*, and its next-n tensors are added after them.
  const int64_t n_mtp = opt.mtp ? cfg.n_mtp_layers : 0;
  ModelConfig file_cfg = cfg;
  file_cfg.n_layer = cfg.n_layer + n_mtp;
  std::vector<TensorPlan> plan = gguf_tensor_plan(file_cfg, MlaLayout::Split);
  const int64_t D = cfg.n_embd;
  for (int64_t k = 0; k < n_mtp; ++k) {
    const std::string b = fmt::format("blk.{}.nextn.", cfg.n_layer + k);
    plan.push_back({b + "eh_proj.weight", {D, 2 * D}, TensorRole::Matrix});
    plan.push_back({b + "enorm.weight", {D}, TensorRole::Norm});
    plan.push_back({b + "hnorm.weight", {D}, TensorRole::Norm});
    plan.push_back({b + "shared_head_norm.weight", {D}, TensorRole::Norm});
  }
  GgufWriter w;
  set_gguf_metadata(w, file_cfg, MlaLayout::Split, opt.model_name, /*file_type F32*/ 0);
  if (n_mtp > 0) w.set_u32("deepseek2.nextn_predict_layers", uint32_t(n_mtp));
  // A config without bos/eos ids must not leave -1 (as u32) in the file.
  if (cfg.bos_token < 0) w.remove("tokenizer.ggml.bos_token_id");
  if (cfg.eos_token < 0) w.remove("tokenizer.ggml.eos_token_id");
  if (!opt.tokenizer_dir.empty()) set_tokenizer(w, opt.tokenizer_dir);
  const Source src(params);
  for (const TensorPlan& t : plan) {
    const std::vector<float> data = tensor_data(cfg, t, src);
    w.add_tensor(t.name, DType::F32, t.shape, data.data(), data.size() * 4);
  }
  w.write(path);
}

}  // namespace whale::train
