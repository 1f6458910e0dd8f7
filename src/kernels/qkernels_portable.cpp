// The portable level: plain C++ versions of every kernel, the reference the SIMD levels are
// tested against. Same arithmetic as the x86 files (integer dot products per group of 16
// for the K-quants, per block of 32 for Q8_0/Q4_0/Q4_1/Q5_0/Q5_1), simple loops.
// Also the activation quantizers, shared by every level.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "core/cpu_features.h"
#include "kernels/ops.h"
#include "kernels/qkernels.h"
#include "kernels/quants.h"

namespace whale::kern {

namespace {

// ggml's nearest_int: round to nearest, ties to even (|v| < 2^22).
inline int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

void decode_k(DType t, const uint8_t* p, KBlock* k) {
  if (t == DType::Q6_K) {
    block_q6_K b;
    std::memcpy(&b, p, sizeof b);
    k->d = k->dmin = f16_to_f32(b.d);
    for (int j = 0; j < 16; ++j) {
      k->scale[j] = b.scales[j];
      k->min[j] = int16_t(32 * b.scales[j]);
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* ql = b.ql + 64 * h;
        const uint8_t qh = b.qh[32 * h + l];
        uint8_t* q = k->q + 128 * h;
        q[l + 0] = uint8_t((ql[l] & 0xF) | ((qh >> 0) & 3) << 4);
        q[l + 32] = uint8_t((ql[l + 32] & 0xF) | ((qh >> 2) & 3) << 4);
        q[l + 64] = uint8_t((ql[l] >> 4) | ((qh >> 4) & 3) << 4);
        q[l + 96] = uint8_t((ql[l + 32] >> 4) | ((qh >> 6) & 3) << 4);
      }
    return;
  }
  // Q4_K and Q5_K share the header layout: d, dmin, scales[12]; Q5_K adds qh[32].
  const bool q5 = t == DType::Q5_K;
  uint16_t d, dmin;
  std::memcpy(&d, p, 2);
  std::memcpy(&dmin, p + 2, 2);
  k->d = f16_to_f32(d);
  k->dmin = f16_to_f32(dmin);
  unpack_k4_scales(p + 4, k->scale, k->min);
  const uint8_t* qh = p + 16;
  const uint8_t* qs = p + (q5 ? 48 : 16);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      int lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
      if (q5) {
        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
      }
      k->q[64 * c + l] = uint8_t(lo);
      k->q[64 * c + 32 + l] = uint8_t(hi);
    }
}

// (weight block) . (activation block), exactly the integer sums of the x86 kernels.
float kdot(const KBlock& w, const ActQ8K& x) {
  int32_t isum = 0, msum = 0;
  for (int g = 0; g < kQK / 16; ++g) {
    int32_t s = 0;
    for (int e = 16 * g; e < 16 * g + 16; ++e) s += int32_t(w.q[e]) * x.qs[e];
    isum += s * w.scale[g];
    msum += int32_t(w.min[g]) * x.bsums[g];
  }
  return x.d * (w.d * float(isum) - w.dmin * float(msum));
}

float b32dot(DType t, const uint8_t* p, const ActQ8B& x) {
  int q[kQ32];
  float d, m;
  whale::unpack_block32(t, p, q, &d, &m);
  int32_t s = 0;
  for (int e = 0; e < kQ32; ++e) s += q[e] * x.qs[e];
  return d * x.d * float(s) + m * x.d * float(x.sum);
}

void gemm_fast(const GemmArgs& a, int64_t r0, int64_t r1) {
  const bool k = a.wtype == DType::Q4_K || a.wtype == DType::Q5_K || a.wtype == DType::Q6_K;
  const DTypeInfo& info = dtype_info(a.wtype);
  const int64_t nb = a.cols / info.block_elems;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = a.w + uint64_t(r) * a.w_row_bytes;
    for (int64_t t = 0; t < a.n_tok; ++t) a.y[t * a.ldy + r] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* p = row + b * info.block_bytes;
      if (k) {
        KBlock kb;
        decode_k(a.wtype, p, &kb);
        for (int64_t t = 0; t < a.n_tok; ++t)
          a.y[t * a.ldy + r] += kdot(kb, reinterpret_cast<const ActQ8K*>(a.xq + t * a.xq_stride)[b]);
      } else {
        for (int64_t t = 0; t < a.n_tok; ++t)
          a.y[t * a.ldy + r] += b32dot(a.wtype, p, reinterpret_cast<const ActQ8B*>(a.xq + t * a.xq_stride)[b]);
      }
    }
  }
}

void dequantize(DType t, const uint8_t* src, float* dst, int64_t n) { whale::dequantize_row(t, src, dst, n); }

void gemm_exact(const GemmArgs& a, int64_t r0, int64_t r1, float* scratch) {
  for (int64_t r = r0; r < r1; ++r) {
    dequantize(a.wtype, a.w + uint64_t(r) * a.w_row_bytes, scratch, a.cols);
    for (int64_t t = 0; t < a.n_tok; ++t) a.y[t * a.ldy + r] = dot_f32(scratch, a.x + t * a.ldx, a.cols);
  }
}

const KernelSet kSet = {"portable", gemm_fast, gemm_exact, dequantize};

}  // namespace

const KernelSet& kernels_portable() { return kSet; }

namespace {

// The value of largest magnitude in x[0..kQK) (its first occurrence, sign kept), its magnitude,
// and whether every element is finite.
struct BlockMax {
  float max = 0, amax = 0;
  bool finite = true;
};

BlockMax block_max_scalar(const float* x) {
  BlockMax m;
  for (int e = 0; e < kQK; ++e) {
    const float ax = std::fabs(x[e]);
    m.finite = m.finite && std::isfinite(x[e]);
    if (ax > m.amax) {
      m.amax = ax;
      m.max = x[e];
    }
  }
  return m;
}

#if defined(__x86_64__) || defined(__i386__)
// The same search 8 lanes at a time (max is exact, so the result is bit-identical): the
// branchy scalar loop was ~3% of a 1.5B prefill.
__attribute__((target("avx2"))) BlockMax block_max_avx2(const float* x) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 vmax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  for (int e = 0; e < kQK; e += 8) {
    const __m256 ax = _mm256_and_ps(_mm256_loadu_ps(x + e), abs_mask);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(ax, inf, _CMP_NLT_UQ));  // inf or NaN
    vmax = _mm256_max_ps(vmax, ax);
  }
  BlockMax m;
  m.finite = _mm256_movemask_ps(bad) == 0;
  if (!m.finite) return m;
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  m.amax = _mm_cvtss_f32(h);
  if (m.amax == 0) return m;
  const __m256 target = _mm256_set1_ps(m.amax);
  for (int e = 0; e < kQK; e += 8) {
    const int hit = _mm256_movemask_ps(
        _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + e), abs_mask), target, _CMP_EQ_OQ));
    if (hit) {
      m.max = x[e + __builtin_ctz(unsigned(hit))];
      break;
    }
  }
  return m;
}
#endif

}  // namespace

void quantize_act_q8K(const float* x, ActQ8K* out, int64_t n) {
#if defined(__x86_64__) || defined(__i386__)
  BlockMax (*const search)(const float*) =
      isa_level() >= IsaLevel::Avx2 ? block_max_avx2 : block_max_scalar;
#else
  BlockMax (*const search)(const float*) = block_max_scalar;
#endif
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    ActQ8K& y = out[b];
    const BlockMax bm = search(x);
    const float max = bm.max, amax = bm.amax;
    const bool finite = bm.finite;
    if (!finite || amax == 0) {  // zeros; a non-finite input makes the products NaN
      std::memset(&y, 0, sizeof y);
      if (!finite) y.d = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    const float iscale = -127.f / max;
    for (int e = 0; e < kQK; ++e) y.qs[e] = int8_t(std::min(127, nearest_int(iscale * x[e])));
    for (int g = 0; g < kQK / 16; ++g) {
      int s = 0;
      for (int e = 16 * g; e < 16 * g + 16; ++e) s += y.qs[e];
      y.bsums[g] = int16_t(s);
    }
    y.d = 1 / iscale;
  }
}

void quantize_act_q8B(const float* x, ActQ8B* out, int64_t n) {
  for (int64_t b = 0; b < n / kQ32; ++b, x += kQ32) {
    ActQ8B& y = out[b];
    float amax = 0;
    bool finite = true;
    for (int e = 0; e < kQ32; ++e) {
      finite = finite && std::isfinite(x[e]);
      amax = std::max(amax, std::fabs(x[e]));
    }
    if (!finite || amax == 0) {  // zeros; a non-finite input makes the products NaN
      std::memset(&y, 0, sizeof y);
      if (!finite) y.d = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    y.d = amax / 127.f;
    const float id = 127.f / amax;
    y.sum = 0;
    for (int e = 0; e < kQ32; ++e) {
      y.qs[e] = int8_t(nearest_int(x[e] * id));
      y.sum += y.qs[e];
    }
  }
}

}  // namespace whale::kern
