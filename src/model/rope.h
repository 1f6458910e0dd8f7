// Rotary position embedding tables: per-frequency inverse wavelengths (with YaRN or llama3
// scaling applied) and the cos/sin of one position. Frequencies and angles are computed in
// float32 as the PyTorch references do, so positions far from 0 round the same way.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace whale {

// inv_freq[i] for i < dim/2. `divisors` (GGUF rope_freqs, llama3) divides each frequency when
// given; otherwise the config's rope_scaling decides.
std::vector<float> rope_inv_freq(const ModelConfig& cfg, int64_t dim,
                                 const std::vector<float>* divisors = nullptr);

// cs[2i] = cos(pos * inv_freq[i]), cs[2i+1] = sin(...)
void rope_cos_sin(const std::vector<float>& inv_freq, int64_t pos, float* cs);

// DeepSeek's MLA softmax scale: (dn + dr)^-0.5 * m^2, m = 0.1 * mscale_all_dim * ln(factor) + 1
// under YaRN, else 1.
float mla_softmax_scale(const ModelConfig& cfg);

}  // namespace whale
