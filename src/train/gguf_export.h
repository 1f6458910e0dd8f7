// A deepseek2 model held as Hugging Face-named f32 parameters (the training master weights)
// → a GGUF file that `whale run` and llama.cpp load: tensor names, shapes and metadata from
// model/shapes.h (the code `whale synth` uses), all tensors F32, with current llama.cpp's
// MLA layout (kv_b_proj split into attn_k_b, per head transposed, and attn_v_b) and the
// routed experts stacked into ffn_*_exps.
//
// The multi-token-prediction block (model.layers.<n_layer>.*) is written the way llama.cpp
// stores DeepSeek/GLM next-n layers: block_count counts it, `deepseek2.nextn_predict_layers`
// says how many of the last blocks are MTP, its attention/MoE tensors are ordinary
// blk.<n_layer>.* tensors and its own ones are blk.<n_layer>.nextn.{eh_proj, enorm, hnorm,
// shared_head_norm} (embedding and output head are shared with the main model, as in
// DeepSeek-V3, so no nextn.embed_tokens / nextn.shared_head_head). The main forward of both
// whale and llama.cpp skips it; `mtp = false` leaves it out.
//
// With a tokenizer folder (tokenizer.json + tokenizer_config.json from `whale train-tokenizer`)
// its vocabulary, merges, BOS/EOS and chat template replace the placeholder vocabulary, so
// `whale run -m ckpt.gguf -p "…"` works on the file alone.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"
#include "train/train_model.h"

namespace whale::train {

struct GgufExportOptions {
  std::string model_name = "whale";
  std::string tokenizer_dir;  // "" = placeholder vocabulary (byte tokens, "t<id>" fillers)
  bool mtp = true;            // write the MTP block(s), if the config has any
};

void export_gguf(const ModelConfig& cfg, const std::vector<Param>& params, const std::string& path,
                 const GgufExportOptions& opt);

}  // namespace whale::train
