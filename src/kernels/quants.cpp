// Portable reference implementations of the ggml block formats (see quants.h for layouts).
//
// Every block is copied into a local struct before its fields are read, and written from a
// local struct with memcpy, so source and destination rows may have any alignment.
// The quantizers follow ggml's reference quantizers step by step, including the order of
// float operations, so that their output matches ggml's byte for byte on the same inputs.
// ggml's own reference quantizers live in ggml-base, which llama.cpp builds without FMA, so
// fused multiply-adds are switched off in this file: with -march=native and GCC's default
// -ffp-contract=fast, contracting a*b+c would change some rounding decisions.
#include "kernels/quants.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace whale {

namespace {

[[noreturn]] void fail(const char* what, DType t) {
  std::fprintf(stderr, "whale: %s (dtype %s)\n", what, dtype_name(t));
  std::abort();
}

// Number of blocks in n elements; aborts unless n is a non-negative multiple of the block.
int64_t block_count(DType t, int64_t n) {
  if (size_t(t) >= size_t(DType::Count)) fail("invalid dtype", DType::F32);
  const int64_t be = dtype_info(t).block_elems;
  if (n < 0 || n % be != 0) fail("row length is not a multiple of the block size", t);
  return n / be;
}

// ggml's nearest_int: round to nearest, ties to even, valid for |v| < 2^22. Out-of-range
// inputs (only from non-finite data) give a meaningless but defined result.
inline int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

// float -> int conversions that are UB-free for NaN and out-of-range values, and equal to
// the plain C conversion for every in-range value.
inline int8_t round_to_i8(float v) {  // roundf, then to int8 (Q8_0)
  v = std::round(v);
  if (!(v >= -128.f)) return v != v ? 0 : -128;
  if (v > 127.f) return 127;
  return int8_t(v);
}
inline int trunc_to_int(float v, int lo, int hi) {  // truncating cast, clamped to [lo, hi]
  if (!(v >= float(lo))) return lo;
  if (v >= float(hi)) return hi;
  return int(v);
}

inline float ld_f16(uint16_t h) { return f16_to_f32(h); }

constexpr float GROUP_MAX_EPS = 1e-15f;

// ---- dequantize one block ---------------------------------------------------------------

// Q8_0, Q4_0, Q5_0: x = float(q) * d; Q4_1, Q5_1: x = float(q) * d + m (as ggml's
// dequantize_row_*: a multiply, then an add).
template <DType T>
void dequant_block32(const uint8_t* p, float* y) {
  int q[QK8_0];
  float d, m;
  unpack_block32(T, p, q, &d, &m);
  constexpr bool offset = T == DType::Q4_1 || T == DType::Q5_1;
  for (int j = 0; j < QK8_0; ++j) y[j] = offset ? float(q[j]) * d + m : float(q[j]) * d;
}

void dequant_q4_K(const uint8_t* p, float* y) {
  block_q4_K b;
  std::memcpy(&b, p, sizeof b);
  const float d = ld_f16(b.d);
  const float min = ld_f16(b.dmin);
  const uint8_t* q = b.qs;
  int is = 0;
  for (int j = 0; j < QK_K; j += 64) {
    uint8_t sc, m;
    get_scale_min_k4(is + 0, b.scales, &sc, &m);
    const float d1 = d * sc, m1 = min * m;
    get_scale_min_k4(is + 1, b.scales, &sc, &m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}

void dequant_q5_K(const uint8_t* p, float* y) {
  block_q5_K b;
  std::memcpy(&b, p, sizeof b);
  const float d = ld_f16(b.d);
  const float min = ld_f16(b.dmin);
  const uint8_t* ql = b.qs;
  int is = 0;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < QK_K; j += 64) {
    uint8_t sc, m;
    get_scale_min_k4(is + 0, b.scales, &sc, &m);
    const float d1 = d * sc, m1 = min * m;
    get_scale_min_k4(is + 1, b.scales, &sc, &m);
    const float d2 = d * sc, m2 = min * m;
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * float((ql[l] & 0xF) + (b.qh[l] & u1 ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * float((ql[l] >> 4) + (b.qh[l] & u2 ? 16 : 0)) - m2;
    ql += 32;
    is += 2;
    u1 = uint8_t(u1 << 2);
    u2 = uint8_t(u2 << 2);
  }
}

void dequant_q6_K(const uint8_t* p, float* y) {
  block_q6_K b;
  std::memcpy(&b, p, sizeof b);
  const float d = ld_f16(b.d);
  const uint8_t* ql = b.ql;
  const uint8_t* qh = b.qh;
  const int8_t* sc = b.scales;
  for (int n = 0; n < QK_K; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * float(sc[is + 0]) * float(q1);
      y[l + 32] = d * float(sc[is + 2]) * float(q2);
      y[l + 64] = d * float(sc[is + 4]) * float(q3);
      y[l + 96] = d * float(sc[is + 6]) * float(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// ---- quantize one block -----------------------------------------------------------------

void quant_q8_0(const float* x, uint8_t* p) {
  float amax = 0.0f;
  for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / ((1 << 7) - 1);
  const float id = d ? 1.0f / d : 0.0f;
  block_q8_0 b;
  b.d = f32_to_f16(d);
  for (int j = 0; j < QK8_0; ++j) b.qs[j] = round_to_i8(x[j] * id);
  std::memcpy(p, &b, sizeof b);
}

void quant_q4_0(const float* x, uint8_t* p) {
  float amax = 0.0f;  // absolute max
  float max = 0.0f;   // the value with the largest magnitude, sign kept
  for (int j = 0; j < QK4_0; ++j) {
    const float v = x[j];
    if (amax < std::fabs(v)) {
      amax = std::fabs(v);
      max = v;
    }
  }
  const float d = max / -8;
  const float id = d ? 1.0f / d : 0.0f;
  block_q4_0 b;
  b.d = f32_to_f16(d);
  for (int j = 0; j < QK4_0 / 2; ++j) {
    const float x0 = x[j] * id;
    const float x1 = x[QK4_0 / 2 + j] * id;
    const int xi0 = std::min(15, trunc_to_int(x0 + 8.5f, -128, 127));
    const int xi1 = std::min(15, trunc_to_int(x1 + 8.5f, -128, 127));
    b.qs[j] = uint8_t(xi0 | (xi1 << 4));
  }
  std::memcpy(p, &b, sizeof b);
}

// Q4_1 / Q5_1 (ggml's quantize_row_q4_1_ref / q5_1_ref): x ~ d * q + min over the block's
// range, q = (x - min) / d rounded half up, 2^bits - 1 steps.
template <int Bits>
void quant_affine(const float* x, uint16_t* d_out, uint16_t* m_out, uint8_t* qh4, uint8_t* qs) {
  float min = std::numeric_limits<float>::max(), max = -std::numeric_limits<float>::max();
  for (int j = 0; j < QK4_0; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / ((1 << Bits) - 1);
  const float id = d ? 1.0f / d : 0.0f;
  *d_out = f32_to_f16(d);
  *m_out = f32_to_f16(min);
  uint32_t qh = 0;
  for (int j = 0; j < QK4_0 / 2; ++j) {
    const float x0 = (x[j] - min) * id;
    const float x1 = (x[QK4_0 / 2 + j] - min) * id;
    // Q4_1: MIN(15, (int8_t)(v + 0.5f)); Q5_1: (uint8_t)(v + 0.5f) (in range 0..31 here)
    const int xi0 = Bits == 4 ? std::min(15, trunc_to_int(x0 + 0.5f, -128, 127)) : trunc_to_int(x0 + 0.5f, 0, 255);
    const int xi1 = Bits == 4 ? std::min(15, trunc_to_int(x1 + 0.5f, -128, 127)) : trunc_to_int(x1 + 0.5f, 0, 255);
    qs[j] = uint8_t((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
    qh |= uint32_t((xi0 & 0x10) >> 4) << j;
    qh |= uint32_t((xi1 & 0x10) >> 4) << (j + QK4_0 / 2);
  }
  if (qh4) std::memcpy(qh4, &qh, 4);
}

void quant_q4_1(const float* x, uint8_t* p) {
  block_q4_1 b;
  quant_affine<4>(x, &b.d, &b.m, nullptr, b.qs);
  std::memcpy(p, &b, sizeof b);
}

void quant_q5_1(const float* x, uint8_t* p) {
  block_q5_1 b;
  quant_affine<5>(x, &b.d, &b.m, b.qh, b.qs);
  std::memcpy(p, &b, sizeof b);
}

// ggml's quantize_row_q5_0_ref: as Q4_0 with 32 steps, d = max / -16.
void quant_q5_0(const float* x, uint8_t* p) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < QK4_0; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -16;
  const float id = d ? 1.0f / d : 0.0f;
  block_q5_0 b;
  b.d = f32_to_f16(d);
  uint32_t qh = 0;
  for (int j = 0; j < QK4_0 / 2; ++j) {
    const int xi0 = std::min(31, trunc_to_int(x[j] * id + 16.5f, -128, 127));
    const int xi1 = std::min(31, trunc_to_int(x[QK4_0 / 2 + j] * id + 16.5f, -128, 127));
    b.qs[j] = uint8_t((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
    qh |= uint32_t((xi0 & 0x10) >> 4) << j;
    qh |= uint32_t((xi1 & 0x10) >> 4) << (j + QK4_0 / 2);
  }
  std::memcpy(b.qh, &qh, 4);
  std::memcpy(p, &b, sizeof b);
}

// ggml's make_qkx2_quants: weighted least-squares fit of x ~ scale * L - the_min, with L in
// [0, nmax], trying nstep+1 candidate inverse scales around nmax / (max - min).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// ggml's make_qx_quants for symmetric quants L in [0, 2*nmax) (stored with offset nmax),
// rmse_type 1 (weights x^2) and no importance weights, as used by Q6_K.
float make_qx_quants_rmse1(int n, int nmax, const float* x, int8_t* L) {
  float max = 0;
  float amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per-sub-block scales and mins from
// make_qkx2_quants, quantized to 6 bits against the block maxima, then the final quants
// L[256] recomputed with the quantized scales. Fills d, dmin and scales[12].
void quant_k_scales_mins(const float* x, int nmax, float rmin, int nstep, uint16_t* d_out,
                         uint16_t* dmin_out, uint8_t* packed, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32];
  float mins[QK_K / 32];
  float scales[QK_K / 32];
  float max_scale = 0;  // as the min is subtracted, scales are never negative
  float max_min = 0;
  for (int j = 0; j < QK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                 rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }

  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(packed, 0, K_SCALE_SIZE);
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t ls = uint8_t(nearest_int(inv_scale * scales[j]));
    uint8_t lm = uint8_t(nearest_int(inv_min * mins[j]));
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] |= uint8_t((ls >> 4) << 6);
      packed[j - 0] |= uint8_t((lm >> 4) << 6);
    }
  }
  *d_out = f32_to_f16(max_scale / 63.f);
  *dmin_out = f32_to_f16(max_min / 63.f);

  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, packed, &sc, &m);
    const float d = f16_to_f32(*d_out) * sc;
    if (!d) continue;  // keeps make_qkx2_quants' L, as ggml does
    const float dm = f16_to_f32(*dmin_out) * m;
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = uint8_t(std::max(0, std::min(nmax, l)));
    }
  }
}

void quant_q4_K(const float* x, uint8_t* p) {
  block_q4_K b;
  uint8_t L[QK_K];
  quant_k_scales_mins(x, 15, -1.f, 20, &b.d, &b.dmin, b.scales, L);
  uint8_t* q = b.qs;
  for (int j = 0; j < QK_K; j += 64) {
    for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
    q += 32;
  }
  std::memcpy(p, &b, sizeof b);
}

void quant_q5_K(const float* x, uint8_t* p) {
  block_q5_K b;
  uint8_t L[QK_K];
  quant_k_scales_mins(x, 31, -0.5f, 15, &b.d, &b.dmin, b.scales, L);
  std::memset(b.qh, 0, sizeof b.qh);
  uint8_t* ql = b.qs;
  uint8_t m1 = 1, m2 = 2;
  for (int n = 0; n < QK_K; n += 64) {
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j];
      if (l1 > 15) {
        l1 -= 16;
        b.qh[j] |= m1;
      }
      int l2 = L[n + j + 32];
      if (l2 > 15) {
        l2 -= 16;
        b.qh[j] |= m2;
      }
      ql[j] = uint8_t(l1 | (l2 << 4));
    }
    m1 = uint8_t(m1 << 2);
    m2 = uint8_t(m2 << 2);
    ql += 32;
  }
  std::memcpy(p, &b, sizeof b);
}

void quant_q6_K(const float* x, uint8_t* p) {
  block_q6_K b;
  int8_t L[QK_K];
  float scales[QK_K / 16];
  float max_scale = 0;
  float max_abs_scale = 0;
  for (int ib = 0; ib < QK_K / 16; ++ib) {
    const float scale = make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
    scales[ib] = scale;
    const float abs_scale = std::fabs(scale);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = scale;
    }
  }
  if (max_abs_scale < GROUP_MAX_EPS) {  // all (near) zero
    std::memset(&b, 0, sizeof b);
    b.d = f32_to_f16(0.f);
    std::memcpy(p, &b, sizeof b);
    return;
  }

  const float iscale = -128.f / max_scale;
  b.d = f32_to_f16(1 / iscale);
  for (int ib = 0; ib < QK_K / 16; ++ib)
    b.scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));

  for (int j = 0; j < QK_K / 16; ++j) {
    const float d = f16_to_f32(b.d) * b.scales[j];
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) {
      int l = nearest_int(x[16 * j + ii] / d);
      l = std::max(-32, std::min(31, l));
      L[16 * j + ii] = int8_t(l + 32);
    }
  }

  uint8_t* ql = b.ql;
  uint8_t* qh = b.qh;
  for (int j = 0; j < QK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      const uint8_t q1 = L[j + l + 0] & 0xF;
      const uint8_t q2 = L[j + l + 32] & 0xF;
      const uint8_t q3 = L[j + l + 64] & 0xF;
      const uint8_t q4 = L[j + l + 96] & 0xF;
      ql[l + 0] = uint8_t(q1 | (q3 << 4));
      ql[l + 32] = uint8_t(q2 | (q4 << 4));
      qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                      ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
    }
    ql += 64;
    qh += 32;
  }
  std::memcpy(p, &b, sizeof b);
}

using DequantBlockFn = void (*)(const uint8_t*, float*);
using QuantBlockFn = void (*)(const float*, uint8_t*);

DequantBlockFn dequant_fn(DType t) {
  switch (t) {
    case DType::Q8_0: return dequant_block32<DType::Q8_0>;
    case DType::Q4_0: return dequant_block32<DType::Q4_0>;
    case DType::Q4_K: return dequant_q4_K;
    case DType::Q5_K: return dequant_q5_K;
    case DType::Q6_K: return dequant_q6_K;
    case DType::Q4_1: return dequant_block32<DType::Q4_1>;
    case DType::Q5_0: return dequant_block32<DType::Q5_0>;
    case DType::Q5_1: return dequant_block32<DType::Q5_1>;
    default: return nullptr;
  }
}

QuantBlockFn quant_fn(DType t) {
  switch (t) {
    case DType::Q8_0: return quant_q8_0;
    case DType::Q4_0: return quant_q4_0;
    case DType::Q4_K: return quant_q4_K;
    case DType::Q5_K: return quant_q5_K;
    case DType::Q6_K: return quant_q6_K;
    case DType::Q4_1: return quant_q4_1;
    case DType::Q5_0: return quant_q5_0;
    case DType::Q5_1: return quant_q5_1;
    default: return nullptr;
  }
}

}  // namespace

void unpack_block32(DType t, const void* block, int* q, float* d, float* m) {
  const auto* p = static_cast<const uint8_t*>(block);
  uint16_t h[2];
  std::memcpy(h, p, 4);
  const bool offset = t == DType::Q4_1 || t == DType::Q5_1;
  *d = ld_f16(h[0]);
  *m = offset ? ld_f16(h[1]) : 0.0f;
  if (t == DType::Q8_0) {
    for (int e = 0; e < QK8_0; ++e) q[e] = int8_t(p[2 + e]);
    return;
  }
  const bool five = t == DType::Q5_0 || t == DType::Q5_1;
  const uint8_t* after = p + (offset ? 4 : 2);  // qh (5 bits) or qs
  uint32_t qh = 0;
  if (five) std::memcpy(&qh, after, 4);
  const uint8_t* qs = after + (five ? 4 : 0);
  const int zero = t == DType::Q4_0 ? 8 : t == DType::Q5_0 ? 16 : 0;
  for (int e = 0; e < QK4_0 / 2; ++e) {
    q[e] = ((qs[e] & 0x0F) | int((qh >> e) & 1) << 4) - zero;
    q[e + QK4_0 / 2] = ((qs[e] >> 4) | int((qh >> (e + QK4_0 / 2)) & 1) << 4) - zero;
  }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(t, n);
  const auto* s = static_cast<const uint8_t*>(src);
  switch (t) {
    case DType::F32:
      if (n > 0) std::memcpy(dst, s, size_t(n) * sizeof(float));
      return;
    case DType::F16:
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = t == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    case DType::F8_E4M3:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp8_e4m3_to_f32(s[i]);
      return;
    default: break;
  }
  const DequantBlockFn fn = dequant_fn(t);
  if (!fn) fail("dequantize_row: unsupported dtype", t);
  const DTypeInfo& info = dtype_info(t);
  for (int64_t i = 0; i < nb; ++i) fn(s + i * info.block_bytes, dst + i * info.block_elems);
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(t, n);
  auto* d = static_cast<uint8_t*>(dst);
  switch (t) {
    case DType::F32:
      if (n > 0) std::memcpy(d, src, size_t(n) * sizeof(float));
      return;
    case DType::F16:
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = t == DType::F16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case DType::F8_E4M3: fail("quantize_row: quantizing to f8_e4m3 is not supported", t);
    default: break;
  }
  const QuantBlockFn fn = quant_fn(t);
  if (!fn) fail("quantize_row: unsupported dtype", t);
  const DTypeInfo& info = dtype_info(t);
  for (int64_t i = 0; i < nb; ++i) fn(src + i * info.block_elems, d + i * info.block_bytes);
}

float dot_row(DType t, const void* row, const float* x, int64_t n) {
  block_count(t, n);
  const DTypeInfo& info = dtype_info(t);
  // 256 elements is a whole number of blocks for every type (block_elems is 1, 32 or 256).
  constexpr int64_t kChunk = 256;
  static_assert(kChunk % QK_K == 0 && kChunk % QK8_0 == 0);
  float buf[kChunk];
  const auto* s = static_cast<const uint8_t*>(row);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    const int64_t byte_off = i / info.block_elems * info.block_bytes;
    dequantize_row(t, s + byte_off, buf, m);
    for (int64_t j = 0; j < m; ++j) sum += buf[j] * x[i + j];
  }
  return sum;
}

}  // namespace whale
