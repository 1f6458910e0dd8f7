#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu_features.h"
#include "kernels/exp_avx2.h"

namespace whale {

float dot_f32(const float* a, const float* b, int64_t n) {
  // Eight independent partial sums let the compiler vectorise without -ffast-math.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0;  // accumulate in double: the mean of squares is the precision-critical bit
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const float r = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
  for (int64_t i = 0; i < n; ++i) y[i] = w ? (x[i] * r) * w[i] : x[i] * r;
}

void softmax_inplace(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

#if defined(__x86_64__) || defined(__i386__)
namespace {
// silu(g) · u for 8 elements: g / (1 + e^-g) · u.
__attribute__((target("avx2,fma"))) inline __m256 swiglu8(__m256 g, __m256 u) {
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp8_avx2(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u);
}

// The tail goes through the same 8-wide code (zero-padded), so every element's result is the
// same whatever n is: the batch invariance of the matmuls carries through the FFN.
__attribute__((target("avx2,fma"))) void swiglu_avx2(const float* gate, const float* up,
                                                     float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    float g[8] = {}, u[8] = {}, o[8];
    std::memcpy(g, gate + i, size_t(n - i) * sizeof(float));
    std::memcpy(u, up + i, size_t(n - i) * sizeof(float));
    _mm256_storeu_ps(o, swiglu8(_mm256_loadu_ps(g), _mm256_loadu_ps(u)));
    std::memcpy(out + i, o, size_t(n - i) * sizeof(float));
  }
}
}  // namespace
#endif

// ~4% of a 1.5B prefill with std::exp one element at a time; 8 at a time on AVX2 (the level
// WHALE_ISA selects, so the portable path stays the scalar reference).
void swiglu(const float* gate, const float* up, float* out, int64_t n) {
#if defined(__x86_64__) || defined(__i386__)
  if (isa_level() >= IsaLevel::Avx2) return swiglu_avx2(gate, up, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

void rope_apply(float* x, const float* cs, int64_t n_freq, RopeStyle style) {
  for (int64_t i = 0; i < n_freq; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    float* a = style == RopeStyle::Adjacent ? &x[2 * i] : &x[i];
    float* b = style == RopeStyle::Adjacent ? &x[2 * i + 1] : &x[i + n_freq];
    const float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x0 * s + x1 * c;
  }
}

}  // namespace whale
