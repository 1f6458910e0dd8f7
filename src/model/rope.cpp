#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace whale {

std::vector<float> rope_inv_freq(const ModelConfig& cfg, int64_t dim,
                                 const std::vector<float>* divisors) {
  const int64_t n = dim / 2;
  std::vector<float> f(static_cast<size_t>(n));
  const float base = float(cfg.rope_theta);
  for (int64_t i = 0; i < n; ++i)
    f[i] = 1.0f / std::pow(base, float(2 * i) / float(dim));

  if (divisors) {
    for (int64_t i = 0; i < n; ++i) f[i] = f[i] / (*divisors)[i];
    return f;
  }
  const RopeScaling& sc = cfg.rope_scaling;
  if (sc.type == RopeScalingType::Yarn) {
    // DeepSeek inference/model.py precompute_freqs_cis.
    const double pi2 = 2.0 * M_PI, ln_base = std::log(cfg.rope_theta);
    auto corr_dim = [&](double rot) {
      return double(dim) * std::log(double(sc.original_ctx) / (rot * pi2)) / (2.0 * ln_base);
    };
    double low = std::max(std::floor(corr_dim(sc.beta_fast)), 0.0);
    double high = std::min(std::ceil(corr_dim(sc.beta_slow)), double(dim - 1));
    if (low == high) high += 0.001;
    const float factor = float(sc.factor);
    for (int64_t i = 0; i < n; ++i) {
      float ramp = std::clamp(float((double(i) - low) / (high - low)), 0.0f, 1.0f);
      float smooth = 1.0f - ramp;
      f[i] = f[i] / factor * (1.0f - smooth) + f[i] * smooth;
    }
  } else if (sc.type == RopeScalingType::Llama3) {
    // transformers _compute_llama3_parameters.
    const double lo_wavelen = double(sc.original_ctx) / sc.low_freq_factor;
    const double hi_wavelen = double(sc.original_ctx) / sc.high_freq_factor;
    const float factor = float(sc.factor);
    for (int64_t i = 0; i < n; ++i) {
      const float inv = f[i];
      const double wavelen = 2.0 * M_PI / double(inv);
      float scaled = wavelen > lo_wavelen ? inv / factor : inv;
      if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) {
        float smooth = float((double(sc.original_ctx) / wavelen - sc.low_freq_factor) /
                             (sc.high_freq_factor - sc.low_freq_factor));
        scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
      }
      f[i] = scaled;
    }
  }
  return f;
}

void rope_cos_sin(const std::vector<float>& inv_freq, int64_t pos, float* cs) {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const float angle = float(pos) * inv_freq[i];
    cs[2 * i] = float(std::cos(double(angle)));
    cs[2 * i + 1] = float(std::sin(double(angle)));
  }
}

float mla_softmax_scale(const ModelConfig& cfg) {
  double scale = 1.0 / std::sqrt(double(cfg.qk_nope_dim + cfg.qk_rope_dim));
  const RopeScaling& sc = cfg.rope_scaling;
  if (sc.type == RopeScalingType::Yarn && sc.mscale_all_dim != 0 && sc.factor > 1) {
    double m = 0.1 * sc.mscale_all_dim * std::log(sc.factor) + 1.0;
    scale *= m * m;
  }
  return float(scale);
}

}  // namespace whale
