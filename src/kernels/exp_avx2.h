// e^x for 8 floats at once, AVX2+FMA: 2^n · e^r with |r| <= ln2/2 and a degree-6 Taylor
// polynomial (relative error ~2e-7), x clamped to [-87, 88] so the result stays a normal float
// (e^-87 ~ 1.6e-38; e^88 < FLT_MAX). Used where a whole array needs exponentials: SwiGLU in
// inference (ops.cpp) and the training ops (train/vec_math.cpp). The attention kernels keep
// their own exp_neg, which maps masked (-inf) scores to exactly 0.
//
// The function carries its own target attribute, so it can be inlined into AVX2 code of a
// portable build; call it only where the CPU has AVX2 and FMA.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

namespace whale {

__attribute__((target("avx2,fma"))) inline __m256 exp8_avx2(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln2 in two parts
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.0f / 720);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 120));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 24));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 6));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
  const __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

}  // namespace whale
#endif
