// AdamW, clipping and the schedule: see optimizer.h for the exact formulas.
#include "train/optimizer.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace whale::train {

double LrSchedule::at(int64_t step) const {
  if (step < 1) fail("learning-rate schedule: step {} (steps count from 1)", step);
  if (warmup > 0 && step <= warmup) return lr * double(step) / double(warmup);
  const int64_t decay_steps = total - warmup;
  if (decay_steps <= 0 || step >= total) return lr * min_ratio;
  const double progress = double(step - warmup) / double(decay_steps);
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return lr * (min_ratio + (1.0 - min_ratio) * cosine);
}

double clip_grad_norm(std::vector<Param>& params, double max_norm) {
  double sum = 0;
  for (const Param& p : params) {
    if (!p.trainable) continue;
    for (float g : p.grad) sum += double(g) * double(g);
  }
  const double norm = std::sqrt(sum);
  if (!std::isfinite(norm)) fail("gradient norm is {} (diverged: lower the learning rate)", norm);
  if (max_norm <= 0) return norm;
  const double scale = max_norm / (norm + 1e-6);
  if (scale < 1.0) {
    const float s = float(scale);  // torch multiplies the f32 grads by the f32 scale
    for (Param& p : params)
      if (p.trainable)
        for (float& g : p.grad) g *= s;
  }
  return norm;
}

AdamW::AdamW(const std::vector<Param>& params, const AdamWConfig& cfg) : cfg_(cfg) {
  if (!(cfg.lr >= 0) || !(cfg.beta1 >= 0 && cfg.beta1 < 1) || !(cfg.beta2 >= 0 && cfg.beta2 < 1) ||
      !(cfg.eps > 0) || !(cfg.weight_decay >= 0))
    fail("AdamW settings out of range (lr {}, betas {}/{}, eps {}, weight decay {})", cfg.lr,
         cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
  m_.resize(params.size());
  v_.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    if (!params[i].trainable) continue;
    m_[i].assign(params[i].value.size(), 0.0f);
    v_[i].assign(params[i].value.size(), 0.0f);
  }
}

void AdamW::step(std::vector<Param>& params, double lr) {
  if (params.size() != m_.size()) fail("AdamW: {} parameters, state for {}", params.size(), m_.size());
  ++t_;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double bc1 = 1.0 - std::pow(b1, double(t_));
  const double sqrt_bc2 = std::sqrt(1.0 - std::pow(b2, double(t_)));
  const double step_size = lr / bc1;
  for (size_t i = 0; i < params.size(); ++i) {
    Param& p = params[i];
    if (!p.trainable) continue;
    if (p.grad.size() != p.value.size() || m_[i].size() != p.value.size())
      fail("AdamW: parameter {} has {} values, {} grads, {} moments", p.name, p.value.size(),
           p.grad.size(), m_[i].size());
    const double decay = p.decay ? 1.0 - lr * cfg_.weight_decay : 1.0;
    float* w = p.value.data();
    const float* g = p.grad.data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    for (size_t j = 0, n = p.value.size(); j < n; ++j) {
      const double gj = g[j];
      const double mj = b1 * m[j] + (1.0 - b1) * gj;
      const double vj = b2 * v[j] + (1.0 - b2) * gj * gj;
      m[j] = float(mj);
      v[j] = float(vj);
      w[j] = float(double(w[j]) * decay - step_size * mj / (std::sqrt(vj) / sqrt_bc2 + cfg_.eps));
    }
  }
}

}  // namespace whale::train
