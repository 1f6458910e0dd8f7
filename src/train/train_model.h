// Training interface shared by the gradient engine (train_model.cpp, forward + backward of
// the deepseek2 architecture with MTP) and the training loop (optimizer, checkpoints, driver).
// Parameters are f32 master copies named with Hugging Face tensor names; the loop only sees
// this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/config.h"

namespace whale::train {

struct Param {
  std::string name;              // Hugging Face name, e.g. "model.layers.0.self_attn.q_a_proj.weight"
  std::vector<int64_t> shape;    // row-major, outermost first (as safetensors stores it)
  std::vector<float> value;      // f32 master weights
  std::vector<float> grad;       // same size; filled by forward_backward
  bool trainable = true;         // false: e_score_correction_bias (updated by load balancing)
  bool decay = true;             // AdamW weight decay: matrices yes, 1-D norm weights/biases no
};

// One batch: B sequences of T tokens; targets[b][t] is the token after tokens[b][t].
struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens, targets;  // [B*T] each
};

struct LossReport {
  double loss_main = 0, loss_mtp = 0, loss_total = 0;
  double loss_aux = 0;  // sequence-wise balance loss (0 when its α is 0)
  // Tokens routed to each expert, one entry per MoE gate in layer order (main layers, then
  // the MTP block's), each of size n_routed_experts.
  std::vector<std::vector<int64_t>> expert_loads;
  // Index into params() of the correction bias each entry of expert_loads belongs to (-1: none).
  std::vector<int64_t> bias_param;
};

class TrainModel {
 public:
  virtual ~TrainModel() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::vector<Param>& params() = 0;
  // Zeroes every grad, then computes losses and d loss_total / d param for the batch.
  // loss_total = loss_main + mtp_lambda * loss_mtp (loss_mtp = 0 without an MTP module)
  // + loss_aux, the sequence-wise balance loss when set_seq_aux_alpha gave it an α > 0.
  virtual LossReport forward_backward(const Batch& batch, float mtp_lambda) = 0;
  // Models without MoE routing accept only 0.
  virtual void set_seq_aux_alpha(double alpha) {
    if (alpha != 0) fail("seq_aux_alpha: this model has no routed experts");
  }
};

// Loads a Hugging Face folder (config.json + model.safetensors[.index.json]) in f32.
std::unique_ptr<TrainModel> load_train_model(const std::string& hf_dir);
// A fresh model of the given configuration, weights drawn from a seeded normal (std 0.02,
// norms 1, biases 0) — as DeepSeek's init.
std::unique_ptr<TrainModel> init_train_model(const ModelConfig& cfg, uint64_t seed);

// A training step allocates and frees the same large activation buffers every step. glibc
// hands blocks above its mmap threshold back to the kernel on free (and trims the heap top),
// so each step page-faulted them in again and the kernel zeroed them, on the calling thread,
// outside the parallel regions. Called once by the training commands: keeps blocks up to
// 32 MiB (glibc's largest threshold) on the heap and the heap untrimmed.
void retain_freed_memory();

}  // namespace whale::train
