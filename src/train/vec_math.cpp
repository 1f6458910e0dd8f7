#include "train/vec_math.h"

#include <algorithm>
#include <cmath>

#if defined(__AVX2__) && defined(__FMA__)
#include "kernels/exp_avx2.h"
#define WHALE_TRAIN_AVX2 1
#endif

namespace whale::train {

namespace {

#ifdef WHALE_TRAIN_AVX2
// The tails go through the same 8-wide code, one lane used.
inline float exp1(float x) { return _mm256_cvtss_f32(exp8_avx2(_mm256_set1_ps(x))); }
#endif

}  // namespace

double exp_shifted_sum(const float* x, float shift, float* y, int64_t n) {
  int64_t i = 0;
  double sum = 0;
#ifdef WHALE_TRAIN_AVX2
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  const __m256 sh = _mm256_set1_ps(shift);
  for (; i + 8 <= n; i += 8) {
    const __m256 v = exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
    _mm256_storeu_ps(y + i, v);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; ++i) sum += double(y[i] = exp1(x[i] - shift));
#else
  for (; i < n; ++i) sum += double(y[i] = std::exp(x[i] - shift));
#endif
  return sum;
}

double exp_shifted_sum(const double* x, double shift, double* y, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += y[i] = std::exp(x[i] - shift);
  return sum;
}

void sigmoid(const float* a, float* s, int64_t n) {
  int64_t i = 0;
#ifdef WHALE_TRAIN_AVX2
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8_avx2(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(a + i)));
    _mm256_storeu_ps(s + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
  }
  for (; i < n; ++i) s[i] = 1.0f / (1.0f + exp1(-a[i]));
#else
  for (; i < n; ++i) s[i] = 1.0f / (1.0f + std::exp(-a[i]));
#endif
}

void sigmoid(const double* a, double* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) s[i] = 1.0 / (1.0 + std::exp(-a[i]));
}

float max_of(const float* x, int64_t n) {
  int64_t i = 0;
  float m = x[0];
#ifdef WHALE_TRAIN_AVX2
  if (n >= 8) {
    __m256 v = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) v = _mm256_max_ps(v, _mm256_loadu_ps(x + i));
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    m = *std::max_element(lanes, lanes + 8);
  }
#endif
  for (; i < n; ++i) m = std::max(m, x[i]);
  return m;
}

double max_of(const double* x, int64_t n) { return *std::max_element(x, x + n); }

}  // namespace whale::train
