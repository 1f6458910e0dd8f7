// AdamW with torch's semantics, global-norm gradient clipping and the learning-rate schedule
// (linear warm-up, then cosine decay to a floor).
//
// One step over the trainable parameters (Param::trainable), in this order:
//   1. clip_grad_norm: n = ‖all grads‖₂ (summed in double, parameter order); every grad is
//      multiplied by min(1, max_norm / (n + 1e-6)) (torch.nn.utils.clip_grad_norm_).
//   2. AdamW::step with the step's learning rate lr, per element (torch.optim.AdamW):
//        w ← w · (1 − lr·wd)           only where Param::decay (matrices; not norms, biases)
//        m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
//        w ← w − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
//      Every trainable parameter is updated, zero-gradient ones (experts no token chose)
//      included: their weights still decay and their moments still shrink.
// Master weights and moments are f32; the update is computed in double and rounded once.
// Everything is sequential and in parameter order, so a step is bit-for-bit reproducible.
#pragma once

#include <cstdint>
#include <vector>

#include "train/train_model.h"

namespace whale::train {

struct AdamWConfig {
  double lr = 1e-3;            // peak learning rate (the schedule scales it)
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double clip_norm = 1.0;      // global gradient-norm bound; <= 0 disables clipping
};

// Linear warm-up from lr/warmup to lr over `warmup` steps, then cosine decay from lr to
// lr·min_ratio at step `total`; constant lr·min_ratio after. Steps count from 1.
struct LrSchedule {
  double lr = 1e-3;
  int64_t warmup = 0;
  int64_t total = 1;
  double min_ratio = 0.1;
  double at(int64_t step) const;
};

// Returns the norm before clipping; scales the grads of trainable params when it exceeds max_norm.
double clip_grad_norm(std::vector<Param>& params, double max_norm);

class AdamW {
 public:
  AdamW() = default;
  AdamW(const std::vector<Param>& params, const AdamWConfig& cfg);

  // One update with learning rate lr (t advances by one first, as torch's step counter).
  void step(std::vector<Param>& params, double lr);

  const AdamWConfig& config() const { return cfg_; }
  int64_t t() const { return t_; }
  // Moments per parameter (empty vectors for non-trainable ones), for checkpoints.
  std::vector<std::vector<float>>& m() { return m_; }
  std::vector<std::vector<float>>& v() { return v_; }
  void set_t(int64_t t) { t_ = t; }

 private:
  AdamWConfig cfg_;
  int64_t t_ = 0;
  std::vector<std::vector<float>> m_, v_;
};

}  // namespace whale::train
