// The whole deepseek2 model for training on a scalar type T: embedding, decoder blocks, final
// norm, head and cross-entropy, plus DeepSeek-V3's multi-token-prediction (MTP) module.
// Weights are not owned: a Binder hands out each named tensor's value and gradient, so the
// same engine runs on the f32 master weights (TrainModel) and on double copies (tests).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/block_train.h"
#include "train/train_model.h"

namespace whale::train {

// One tensor the engine needs, by Hugging Face name.
struct TensorRequest {
  std::string name;
  std::vector<int64_t> shape;
  bool trainable = true;  // false: e_score_correction_bias
  bool optional = false;  // the binder may return an empty slot (no correction bias)
};

template <typename T>
using Binder = std::function<Slot<T>(const TensorRequest&)>;

// Every tensor of the configuration, in a fixed order (the order params() lists them).
// with_bias: include the MoE gates' e_score_correction_bias.
std::vector<TensorRequest> deepseek_tensor_requests(const ModelConfig& cfg, bool with_bias);

// Throws whale::Error when the configuration is outside what training supports.
void check_trainable_config(const ModelConfig& cfg, const std::string& source);

template <typename T>
class DeepseekEngine {
 public:
  DeepseekEngine(const ModelConfig& cfg, const Binder<T>& bind);

  struct Result {
    double loss_main = 0, loss_mtp = 0, loss_total = 0;
    double loss_aux = 0;                          // sequence-wise balance loss, all MoE layers
    std::vector<std::string> gates;               // "model.layers.N.mlp.gate", layer order
    std::vector<std::vector<int64_t>> loads;      // tokens routed per expert, per gate
  };
  // Adds d loss_total / d tensor into every bound gradient (callers zero them first).
  // loss_total = loss_main + mtp_lambda · loss_mtp + loss_aux.
  Result forward_backward(const Batch& batch, double mtp_lambda);
  // α of the sequence-wise balance loss of every MoE layer, the MTP block's included (0: off).
  void set_seq_aux_alpha(double alpha) { seq_aux_alpha_ = alpha; }

 private:
  struct MtpWeights {
    Slot<T> enorm, hnorm, eh_proj, head_norm;  // [D], [D], [D, 2D], [D]
    BlockWeights<T> block;
  };
  BlockWeights<T> bind_block(const Binder<T>& bind, int64_t il);
  void mtp_forward_backward(const Batch& batch, double mtp_lambda, const std::vector<T>& h,
                            Activations<T>& dh, Result& res);

  ModelConfig cfg_;
  Slot<T> embed_, final_norm_, head_;  // [V, D], [D], [V, D] (head_ = embed_ when tied)
  std::vector<BlockWeights<T>> blocks_;
  std::vector<MtpWeights> mtp_;        // 0 or 1
  std::vector<std::vector<float>> biases_;  // float copies of the correction biases
  double seq_aux_alpha_ = 0;
};

}  // namespace whale::train
