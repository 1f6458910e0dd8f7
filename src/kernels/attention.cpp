#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/threadpool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WHALE_ATTN_X86 1
#endif

namespace whale {

namespace {

constexpr int kQT = 4;        // queries per tile (share each loaded K/V vector)
constexpr int kRT = 64;       // cache rows per tile (64 MLA rows = 147 KB: stays in L2)
constexpr int kMaxUnit = 64;  // queries one worker carries through all blocks
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

bool g_force_portable = false;

// ---- portable inner loops (the reference for the SIMD ones) ----
struct Portable {
  // s[i * kRT + u] = scale · q_i · k_u for u < nr
  static void scores(const float* const* q, int nq, const float* k, int64_t ks, int64_t nr,
                     int64_t dk, float scale, float* s) {
    for (int i = 0; i < nq; ++i)
      for (int64_t u = 0; u < nr; ++u) {
        const float* kr = k + u * ks;
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t d = 0;
        for (; d + 8 <= dk; d += 8)
          for (int j = 0; j < 8; ++j) acc[j] += q[i][d + j] * kr[d + j];
        float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; d < dk; ++d) sum += q[i][d] * kr[d];
        s[i * kRT + u] = scale * sum;
      }
  }
  // x[u] = exp(x[u] - m) for u < n; returns the sum
  static float exp_sum(float* x, int64_t n, float m) {
    float sum = 0;
    for (int64_t u = 0; u < n; ++u) sum += x[u] = std::exp(x[u] - m);
    return sum;
  }
  static void scale_row(float* a, int64_t n, float f) {
    for (int64_t j = 0; j < n; ++j) a[j] *= f;
  }
  // acc_i += Σ_u p[i * kRT + u] · v_u
  static void pv(const float* p, int nq, const float* v, int64_t vs, int64_t nr, int64_t dv,
                 float* const* acc) {
    for (int i = 0; i < nq; ++i)
      for (int64_t u = 0; u < nr; ++u) {
        const float w = p[i * kRT + u];
        const float* vr = v + u * vs;
        float* a = acc[i];
        for (int64_t j = 0; j < dv; ++j) a[j] += w * vr[j];
      }
  }
};

#ifdef WHALE_ATTN_X86
#define WHALE_AVX2 __attribute__((target("avx2,fma")))

WHALE_AVX2 inline float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// e^x for x <= 0 (softmax arguments): 2^n · e^r, |r| <= ln2/2, degree-6 Taylor (rel. error
// ~1e-7); x below -87 gives 0.
WHALE_AVX2 inline __m256 exp_neg(__m256 x) {
  const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_GT_OQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.0f / 720);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 120));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 24));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f / 6));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(0.5f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
}

// NQ queries × NR rows of dot products, 8 floats a step: every loaded K vector serves NQ
// queries and every query vector NR rows.
template <int NQ, int NR>
WHALE_AVX2 inline void dot_tile(const float* const* q, const float* k, int64_t ks, int64_t dk,
                                float scale, float* s) {
  __m256 acc[NQ][NR];
#pragma GCC unroll 4
  for (int i = 0; i < NQ; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= dk; d += 8) {
    __m256 kv[NR];
#pragma GCC unroll 2
    for (int j = 0; j < NR; ++j) kv[j] = _mm256_loadu_ps(k + j * ks + d);
#pragma GCC unroll 4
    for (int i = 0; i < NQ; ++i) {
      const __m256 qv = _mm256_loadu_ps(q[i] + d);
#pragma GCC unroll 2
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(qv, kv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < NQ; ++i)
    for (int j = 0; j < NR; ++j) {
      float sum = hsum(acc[i][j]);
      for (int64_t e = d; e < dk; ++e) sum = std::fma(q[i][e], k[j * ks + e], sum);
      s[i * kRT + j] = scale * sum;
    }
}

template <int NQ>
WHALE_AVX2 void scores_n(const float* const* q, const float* k, int64_t ks, int64_t nr, int64_t dk,
                         float scale, float* s) {
  int64_t u = 0;
  for (; u + 2 <= nr; u += 2) dot_tile<NQ, 2>(q, k + u * ks, ks, dk, scale, s + u);
  if (u < nr) dot_tile<NQ, 1>(q, k + u * ks, ks, dk, scale, s + u);
}

// acc_i[c .. c+16) += Σ_u p_i[u] · v_u[c .. c+16): 2 V loads and NQ broadcasts feed 2·NQ FMAs.
template <int NQ>
WHALE_AVX2 void pv_n(const float* p, const float* v, int64_t vs, int64_t nr, int64_t dv,
                     float* const* acc) {
  int64_t c = 0;
  for (; c + 16 <= dv; c += 16) {
    __m256 a0[NQ], a1[NQ];
#pragma GCC unroll 4
    for (int i = 0; i < NQ; ++i) a0[i] = _mm256_loadu_ps(acc[i] + c), a1[i] = _mm256_loadu_ps(acc[i] + c + 8);
    const float* vr = v + c;
    for (int64_t u = 0; u < nr; ++u, vr += vs) {
      const __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8);
#pragma GCC unroll 4
      for (int i = 0; i < NQ; ++i) {
        const __m256 w = _mm256_broadcast_ss(p + i * kRT + u);
        a0[i] = _mm256_fmadd_ps(w, v0, a0[i]);
        a1[i] = _mm256_fmadd_ps(w, v1, a1[i]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NQ; ++i) _mm256_storeu_ps(acc[i] + c, a0[i]), _mm256_storeu_ps(acc[i] + c + 8, a1[i]);
  }
  // Explicit fma in the scalar tails: left to the compiler, `a += p * v` was contracted or
  // not depending on the loop's trip count and the optimisation level, and a paged cache
  // then gave other bits than a flat one.
  for (; c < dv; ++c)
    for (int i = 0; i < NQ; ++i) {
      float a = acc[i][c];
      for (int64_t u = 0; u < nr; ++u) a = std::fma(p[i * kRT + u], v[u * vs + c], a);
      acc[i][c] = a;
    }
}

struct Avx2 {
  WHALE_AVX2 static void scores(const float* const* q, int nq, const float* k, int64_t ks, int64_t nr,
                                int64_t dk, float scale, float* s) {
    switch (nq) {
      case 1: return scores_n<1>(q, k, ks, nr, dk, scale, s);
      case 2: return scores_n<2>(q, k, ks, nr, dk, scale, s);
      case 3: return scores_n<3>(q, k, ks, nr, dk, scale, s);
      default: return scores_n<4>(q, k, ks, nr, dk, scale, s);
    }
  }
  WHALE_AVX2 static float exp_sum(float* x, int64_t n, float m) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    int64_t u = 0;
    for (; u + 8 <= n; u += 8) {
      const __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + u), mv));
      _mm256_storeu_ps(x + u, e);
      sv = _mm256_add_ps(sv, e);
    }
    float sum = hsum(sv);
    for (; u < n; ++u) sum += x[u] = std::exp(x[u] - m);
    return sum;
  }
  WHALE_AVX2 static void scale_row(float* a, int64_t n, float f) {
    const __m256 fv = _mm256_set1_ps(f);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(a + j, _mm256_mul_ps(_mm256_loadu_ps(a + j), fv));
    for (; j < n; ++j) a[j] *= f;
  }
  WHALE_AVX2 static void pv(const float* p, int nq, const float* v, int64_t vs, int64_t nr, int64_t dv,
                            float* const* acc) {
    switch (nq) {
      case 1: return pv_n<1>(p, v, vs, nr, dv, acc);
      case 2: return pv_n<2>(p, v, vs, nr, dv, acc);
      case 3: return pv_n<3>(p, v, vs, nr, dv, acc);
      default: return pv_n<4>(p, v, vs, nr, dv, acc);
    }
  }
};
#endif

bool use_avx2() {
#ifdef WHALE_ATTN_X86
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok && !g_force_portable;
#else
  return false;
#endif
}

// A run of rows of one block that falls inside a tile: `n` rows from `row` on, at tile
// offset `off`.
struct Segment {
  const KvBlock* b;
  int64_t row, n, off;
};

// The blocks' rows in tiles of kRT positions [j·kRT, (j+1)·kRT), folded into the state of the
// queries (t, h0 .. h0+nh). A tile may span several blocks (pages), and each tile takes one
// online-softmax step whatever the cut, so a paged cache gives the bits of a flat one (the
// server's tokens equal `whale run`'s). Per tile: scores, softmax update (rescale only when
// the running max grows), P·V. `blocks` are in position order and contiguous (checked).
template <class K>
void fold_impl(const AttnParams& p, int64_t t, int64_t h0, int64_t nh, std::span<const KvBlock> blocks,
               SoftmaxState st) {
  if (blocks.empty() || nh == 0) return;
  const int64_t first = blocks.front().pos0;
  const int64_t end = std::min<int64_t>(int64_t(p.pos[t]) + 1, blocks.back().pos0 + blocks.back().rows);
  if (end <= first) return;
  const int64_t g = h0 / (p.n_head / p.n_kv_head);
  alignas(32) float s[kQT * kRT];
  const float* q[kQT];
  Segment seg[kRT];
  size_t bi = 0;
  for (int64_t P = first - first % kRT; P < end; P += kRT) {
    const int64_t lo = std::max(P, first), hi = std::min(P + kRT, end), nr = hi - lo;
    int nseg = 0;
    for (int64_t at = lo; at < hi;) {
      while (blocks[bi].pos0 + blocks[bi].rows <= at) ++bi;
      const KvBlock& b = blocks[bi];
      const int64_t n = std::min(hi, b.pos0 + b.rows) - at;
      seg[nseg++] = {&b, at - b.pos0, n, at - lo};
      at += n;
    }
    for (int64_t i0 = 0; i0 < nh; i0 += kQT) {
      const int nq = int(std::min<int64_t>(kQT, nh - i0));
      for (int i = 0; i < nq; ++i) q[i] = p.q + t * p.q_tok_stride + (h0 + i0 + i) * p.q_head_stride;
      for (int k = 0; k < nseg; ++k) {
        const KvBlock& b = *seg[k].b;
        K::scores(q, nq, b.k + g * p.k_head_offset + seg[k].row * b.k_stride, b.k_stride, seg[k].n, p.dk,
                  p.scale, s + seg[k].off);
      }
      for (int i = 0; i < nq; ++i) {
        float* si = s + i * kRT;
        const float mt = *std::max_element(si, si + nr);
        float& m = st.m[i0 + i];
        if (mt > m) {
          if (m != kNegInf) {  // before the first row the state is all zeros: nothing to rescale
            const float alpha = std::exp(m - mt);
            st.l[i0 + i] *= alpha;
            K::scale_row(st.acc[i0 + i], p.dv, alpha);
          }
          m = mt;
        }
        st.l[i0 + i] += K::exp_sum(si, nr, m);
      }
      for (int k = 0; k < nseg; ++k) {
        const KvBlock& b = *seg[k].b;
        K::pv(s + seg[k].off, nq, b.v + g * p.v_head_offset + seg[k].row * b.v_stride, b.v_stride,
              seg[k].n, p.dv, st.acc + i0);
      }
    }
  }
}

void fold_dispatch(const AttnParams& p, int64_t t, int64_t h0, int64_t nh, std::span<const KvBlock> blocks,
                   SoftmaxState st) {
#ifdef WHALE_ATTN_X86
  if (use_avx2()) return fold_impl<Avx2>(p, t, h0, nh, blocks, st);
#endif
  fold_impl<Portable>(p, t, h0, nh, blocks, st);
}

}  // namespace

void check_attention(const AttnParams& p, std::span<const KvBlock> blocks) {
  if (p.n_tok < 0 || p.n_head <= 0 || p.n_kv_head <= 0 || p.n_head % p.n_kv_head != 0)
    fail("attention: n_head {} must be a positive multiple of n_kv_head {} (n_tok {})", p.n_head,
         p.n_kv_head, p.n_tok);
  if (p.dk <= 0 || p.dv <= 0) fail("attention: dk {} and dv {} must be positive", p.dk, p.dv);
  if (p.n_tok > 0 && (!p.q || !p.out || !p.pos)) fail("attention: q, out and pos must be set");
  for (size_t i = 0; i < blocks.size(); ++i) {
    const KvBlock& b = blocks[i];
    if (b.rows < 0 || b.pos0 < 0) fail("attention: block rows {} / pos0 {} negative", b.rows, b.pos0);
    if (i > 0 && b.pos0 != blocks[i - 1].pos0 + blocks[i - 1].rows)
      fail("attention: block {} starts at position {}, not where block {} ends ({})", i, b.pos0, i - 1,
           blocks[i - 1].pos0 + blocks[i - 1].rows);
    if (b.rows > 0 && (!b.k || !b.v)) fail("attention: block of {} rows without k or v", b.rows);
    // Rows must not overlap: a row holds every KV head's key (value) side by side.
    const int64_t k_row = (p.n_kv_head - 1) * p.k_head_offset + p.dk;
    const int64_t v_row = (p.n_kv_head - 1) * p.v_head_offset + p.dv;
    if (b.rows > 1 && (b.k_stride < k_row || b.v_stride < v_row))
      fail("attention: block row strides k {} / v {} shorter than a row ({} / {} floats)", b.k_stride,
           b.v_stride, k_row, v_row);
  }
}

void attn_state_init(SoftmaxState s, int64_t nq, int64_t dv) {
  for (int64_t i = 0; i < nq; ++i) {
    s.m[i] = kNegInf;
    s.l[i] = 0;
    std::fill(s.acc[i], s.acc[i] + dv, 0.0f);
  }
}

void attn_block(const AttnParams& p, int64_t t, int64_t h0, int64_t nh, const KvBlock& b,
                SoftmaxState s) {
  fold_dispatch(p, t, h0, nh, std::span(&b, 1), s);
}

void attn_state_finish(SoftmaxState s, int64_t nq, int64_t dv) {
  for (int64_t i = 0; i < nq; ++i) {
    const float inv = s.l[i] > 0 ? 1.0f / s.l[i] : 0.0f;
    for (int64_t j = 0; j < dv; ++j) s.acc[i][j] *= inv;
  }
}

void attention(const AttnParams& p, std::span<const KvBlock> blocks) {
  check_attention(p, blocks);
  if (p.n_tok == 0) return;
  const int64_t G = p.n_head / p.n_kv_head;
  // Work unit: one token, one KV head, a run of that head's query heads. Decode has few
  // tokens, so the heads are split until every thread has a unit; a unit walks every block
  // once and reuses each row tile across its queries.
  const int64_t threads = ThreadPool::global().size();
  int64_t split = (G + kMaxUnit - 1) / kMaxUnit;
  while (p.n_tok * p.n_kv_head * split < threads && split * kQT < G) ++split;
  const int64_t chunk = (G + split - 1) / split;
  const int64_t units = p.n_tok * p.n_kv_head * split;
  ThreadPool::global().parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
    float m[kMaxUnit], l[kMaxUnit];
    float* acc[kMaxUnit];
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t t = u / (p.n_kv_head * split), g = (u / split) % p.n_kv_head, c = u % split;
      const int64_t h0 = g * G + c * chunk, nh = std::min(chunk, G - c * chunk);
      if (nh <= 0) continue;
      for (int64_t i = 0; i < nh; ++i) acc[i] = p.out + t * p.o_tok_stride + (h0 + i) * p.o_head_stride;
      const SoftmaxState st{m, l, acc};
      attn_state_init(st, nh, p.dv);
      fold_dispatch(p, t, h0, nh, blocks, st);
      attn_state_finish(st, nh, p.dv);
    }
  });
}

void mla_attention(const float* q, int64_t n_tok, int64_t n_head, int64_t C, int64_t dr,
                   const int32_t* pos, float scale, std::span<const KvBlock> blocks, float* out) {
  const AttnParams p{.n_tok = n_tok, .n_head = n_head, .n_kv_head = 1, .dk = C + dr, .dv = C,
                     .q = q, .q_tok_stride = n_head * (C + dr), .q_head_stride = C + dr,
                     .pos = pos, .scale = scale,
                     .out = out, .o_tok_stride = n_head * C, .o_head_stride = C};
  attention(p, blocks);
}

void gqa_attention(const float* q, int64_t n_tok, int64_t n_head, int64_t n_kv_head, int64_t dh,
                   const int32_t* pos, float scale, std::span<const KvBlock> blocks, float* out) {
  const AttnParams p{.n_tok = n_tok, .n_head = n_head, .n_kv_head = n_kv_head, .dk = dh, .dv = dh,
                     .k_head_offset = dh, .v_head_offset = dh,
                     .q = q, .q_tok_stride = n_head * dh, .q_head_stride = dh,
                     .pos = pos, .scale = scale,
                     .out = out, .o_tok_stride = n_head * dh, .o_head_stride = dh};
  attention(p, blocks);
}

const char* attention_isa() { return use_avx2() ? "avx2" : "portable"; }
void force_portable_attention(bool on) { g_force_portable = on; }

}  // namespace whale
