// whale info -m PATH: what a model file holds and what running it costs.
#include <fmt/format.h>

#include <map>

#include "commands.h"
#include "model/model.h"

namespace whale::app {

namespace {

struct InfoArgs {
  std::string model;
};

void run_info(const InfoArgs& a) {
  auto model = load_model(a.model);  // validates every tensor the forward needs
  const ModelFiles* files = &model->files();
  const ModelConfig& c = files->config();

  std::map<std::string, int64_t> by_dtype;
  int64_t total = 0, mtp = 0;
  for (const TensorRef* t : files->tensors()) {
    ++by_dtype[dtype_name(t->dtype)];
    if (t->name.ends_with("weight_scale_inv")) continue;  // FP8 scales are not parameters
    total += t->numel();
    if (files->is_mtp_tensor(t->name)) mtp += t->numel();
  }
  const int64_t forward = total - mtp;
  int64_t n_moe = 0;
  for (int64_t il = 0; il < c.n_layer; ++il) n_moe += c.is_moe_layer(il);
  const int64_t per_expert = 3 * c.n_ff_expert * c.n_embd;
  const int64_t active = forward - n_moe * (c.n_expert - c.n_expert_used) * per_expert;

  auto p = [](const char* k, const std::string& v) { fmt::print("{:<22} {}\n", std::string(k) + ":", v); };
  p("path", a.model);
  p("format", files->format() == FileFormat::Gguf
                  ? fmt::format("gguf v{}", files->gguf()->version())
                  : "huggingface (config.json + safetensors)");
  p("architecture", arch_name(c.arch));
  p("file size", fmt::format("{} bytes ({:.2f} MiB)", files->file_bytes(), files->file_bytes() / 1048576.0));
  p("vocab", std::to_string(c.n_vocab));
  p("hidden", std::to_string(c.n_embd));
  p("layers", std::to_string(c.n_layer));
  p("heads", std::to_string(c.n_head));
  if (c.arch == Arch::Deepseek2) {
    p("q_lora_rank", std::to_string(c.q_lora_rank));
    p("kv_lora_rank", std::to_string(c.kv_lora_rank));
    p("qk_nope/rope/v dims", fmt::format("{}/{}/{}", c.qk_nope_dim, c.qk_rope_dim, c.v_head_dim));
    p("dense layers", fmt::format("{} (ffn {})", c.n_dense_lead, c.n_ff));
    p("experts", fmt::format("{} routed (top-{}, ffn {}), {} shared", c.n_expert, c.n_expert_used,
                             c.n_ff_expert, c.n_expert_shared));
    p("routing", fmt::format("{}, top-{} of {} groups, norm_topk {}, scale {}",
                             c.scoring == ScoringFunc::Sigmoid ? "sigmoid" : "softmax",
                             c.topk_group, c.n_group, c.norm_topk_prob, c.routed_scaling));
  } else {
    p("kv heads", std::to_string(c.n_head_kv));
    p("head dim", std::to_string(c.head_dim));
    p("ffn", std::to_string(c.n_ff));
  }
  p("rope", fmt::format("theta {}, scaling {}", c.rope_theta,
                        c.rope_scaling.type == RopeScalingType::Yarn     ? fmt::format("yarn x{}", c.rope_scaling.factor)
                        : c.rope_scaling.type == RopeScalingType::Llama3 ? fmt::format("llama3 x{}", c.rope_scaling.factor)
                        : std::string("none")));
  p("context (trained)", std::to_string(c.n_ctx_train));
  std::string dt;
  for (auto& [k, v] : by_dtype) dt += fmt::format("{}{}: {}", dt.empty() ? "" : ", ", k, v);
  p("tensors", fmt::format("{} ({})", files->tensors().size(), dt));
  p("params", fmt::format("{} ({:.3f} M)", forward, forward / 1e6));
  if (n_moe > 0) p("params active/token", fmt::format("{} ({:.3f} M)", active, active / 1e6));
  if (mtp > 0) p("mtp params (unused)", fmt::format("{} in {} layer(s), not used by the forward", mtp, c.n_mtp_layers));
  if (!model->unused_tensors().empty())
    p("unused tensors", fmt::format("{} (first: {})", model->unused_tensors().size(), model->unused_tensors()[0]));
  const int64_t kv_values = c.n_layer * c.kv_values_per_token_per_layer();
  p("kv cache/token", fmt::format("{} bytes f16 (default), {} bytes f32 ({} values{})", kv_values * 2,
                                  kv_values * 4, kv_values, c.arch == Arch::Deepseek2 ? ", MLA latent" : ""));
}

}  // namespace

void register_info(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "describe a model file or folder");
  cmd->add_option("-m,--model", args->model, "GGUF file or Hugging Face folder")->required();
  cmd->callback([args] { run_info(*args); });
}

}  // namespace whale::app
