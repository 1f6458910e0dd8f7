// Elementwise and normalisation ops on float32 activations (scalar reference code; swiglu
// has an AVX2 path chosen by the ISA level).
#pragma once

#include <cmath>
#include <cstdint>

#include "model/config.h"

namespace whale {

float dot_f32(const float* a, const float* b, int64_t n);
// y = x / sqrt(mean(x^2) + eps) * w   (w may be null: no weight)
void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps);
void softmax_inplace(float* x, int64_t n);
inline float silu(float x);
// out[i] = silu(gate[i]) * up[i]
void swiglu(const float* gate, const float* up, float* out, int64_t n);
// Rotate x (length 2 * n_freq) by angles pos * inv_freq[i], pairs chosen by style.
// cos/sin tables for that position are passed precomputed: cs[2*i] = cos, cs[2*i+1] = sin.
void rope_apply(float* x, const float* cos_sin, int64_t n_freq, RopeStyle style);

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

}  // namespace whale
