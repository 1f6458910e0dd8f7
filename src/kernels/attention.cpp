#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WHALE_ATTN_X86 1
#endif

namespace whale {

namespace {

constexpr int kQT = 8;        // queries per tile (share each loaded K/V vector)
constexpr int kRT = 64;       // cache rows per tile (64 MLA rows = 147 KB: stays in L2)
constexpr int kMaxUnit = 64;  // queries one worker carries through all blocks
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

bool g_force_portable = false;

#include "kernels/attention_loops.inc"

bool use_avx2() {
#ifdef WHALE_ATTN_X86
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                         __builtin_cpu_supports("f16c");
  return ok && !g_force_portable;
#else
  return false;
#endif
}

// A run of rows of one block inside a tile: `n` rows from row `row` on, at tile offset `off`.
struct Segment {
  const KvBlock* b;
  int64_t row, n, off;
};

// The blocks' rows at positions [r0, r1), in tiles of kRT positions [j·kRT, (j+1)·kRT), folded
// into the state of the queries (t, h0 .. h0+nh). A tile may span several blocks (pages), and
// each tile takes one online-softmax step whatever the cut, so a paged cache gives the bits of
// a flat one (the server's tokens equal `whale run`'s). Per tile: scores, softmax update
// (rescale only when the running max grows), P·V. Blocks are contiguous in position order and
// of one element type (check_attention).
template <class K, class E>
void fold_impl(const AttnParams& p, int64_t t, int64_t h0, int64_t nh, std::span<const KvBlock> blocks,
               int64_t r0, int64_t r1, SoftmaxState st) {
  if (blocks.empty() || nh == 0) return;
  const int64_t first = std::max(r0, blocks.front().pos0);
  const int64_t end = std::min({r1, int64_t(p.pos[t]) + 1, blocks.back().pos0 + blocks.back().rows});
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
        K::scores(q, nq, static_cast<const E*>(b.k) + g * p.k_head_offset + seg[k].row * b.k_stride, b.k_stride,
                  seg[k].n, p.dk, p.scale, s + seg[k].off);
      }
      for (int i = 0; i < nq; ++i) {
        float* si = s + i * kRT;
        const float mt = K::max_of(si, nr);
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
        K::pv(s + seg[k].off, nq, static_cast<const E*>(b.v) + g * p.v_head_offset + seg[k].row * b.v_stride,
              b.v_stride, seg[k].n, p.dv, st.acc + i0);
      }
    }
  }
}

void fold_dispatch(const AttnParams& p, int64_t t, int64_t h0, int64_t nh, std::span<const KvBlock> blocks,
                   int64_t r0, int64_t r1, SoftmaxState st) {
  if (blocks.empty()) return;
  const bool f16 = blocks.front().type == DType::F16;
#ifdef WHALE_ATTN_X86
  if (use_avx2())
    return f16 ? fold_impl<Avx2, uint16_t>(p, t, h0, nh, blocks, r0, r1, st)
               : fold_impl<Avx2, float>(p, t, h0, nh, blocks, r0, r1, st);
#endif
  f16 ? fold_impl<Portable, uint16_t>(p, t, h0, nh, blocks, r0, r1, st)
      : fold_impl<Portable, float>(p, t, h0, nh, blocks, r0, r1, st);
}

constexpr int64_t kAllRows = std::numeric_limits<int64_t>::max();

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
    if (i > 0 && b.type != blocks[0].type) fail("attention: blocks of mixed element types");
    if (b.rows > 0 && (!b.k || !b.v)) fail("attention: block of {} rows without k or v", b.rows);
    if (b.type != DType::F32 && b.type != DType::F16)
      fail("attention: cache rows must be f32 or f16, got {}", dtype_name(b.type));
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
  fold_dispatch(p, t, h0, nh, std::span(&b, 1), 0, kAllRows, s);
}

void attn_state_finish(SoftmaxState s, int64_t nq, int64_t dv) {
  for (int64_t i = 0; i < nq; ++i) {
    const float inv = s.l[i] > 0 ? 1.0f / s.l[i] : 0.0f;
    for (int64_t j = 0; j < dv; ++j) s.acc[i][j] *= inv;
  }
}

namespace {

// Split-K over cache rows: token t's visible rows [0, V) are cut into segments, each folded
// into its own softmax state by any thread, then merged in segment order. The cut depends on V
// only (not on the batch, the thread count or the schedule), so a token's result is the same
// bits whatever else is in the batch (the scheduler's concurrent = sequential test), and decode
// (one token, one MLA stream) still spreads over all threads with every row tile serving all
// heads. At most kMaxSeg segments of at least kSegRows rows, whole row tiles each.
constexpr int64_t kSegRows = 512;
constexpr int64_t kMaxSeg = 8;
constexpr size_t kScratchFloats = size_t(1) << 20;  // partial states per calling thread (4 MiB)

struct Segments {
  int64_t n, len;  // count, rows per segment (the last may be shorter)
};
Segments segments_of(int64_t visible) {
  if (visible <= kSegRows) return {1, std::max<int64_t>(visible, 1)};
  const int64_t want = std::min<int64_t>((visible + kSegRows - 1) / kSegRows, kMaxSeg);
  const int64_t len = ((visible + want - 1) / want + kRT - 1) / kRT * kRT;
  return {(visible + len - 1) / len, len};
}

// out_i = Σ_s e^{m_s,i - M} acc_s,i / Σ_s e^{m_s,i - M} l_s,i over the n segment states
// (`stride` floats apart; each {m [nh], l [nh], acc [nh][dv]}).
void merge_states(const float* states, int64_t n, int64_t stride, int64_t nh, int64_t dv,
                  float* const* out) {
  for (int64_t i = 0; i < nh; ++i) {
    float M = kNegInf;
    for (int64_t s = 0; s < n; ++s) M = std::max(M, states[s * stride + i]);
    float* o = out[i];
    std::fill(o, o + dv, 0.0f);
    if (M == kNegInf) continue;  // saw no row
    float l = 0;
    for (int64_t s = 0; s < n; ++s) {
      const float* st = states + s * stride;
      if (st[i] == kNegInf) continue;
      const float w = std::exp(st[i] - M);
      l += w * st[nh + i];
      const float* acc = st + 2 * nh + i * dv;
      for (int64_t j = 0; j < dv; ++j) o[j] += w * acc[j];
    }
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    for (int64_t j = 0; j < dv; ++j) o[j] *= inv;
  }
}

}  // namespace

void attention(const AttnParams& p, std::span<const KvBlock> blocks) {
  check_attention(p, blocks);
  if (p.n_tok == 0) return;
  const int64_t G = p.n_head / p.n_kv_head;
  int64_t max_seg = 1;
  for (int64_t t = 0; t < p.n_tok; ++t) max_seg = std::max(max_seg, segments_of(int64_t(p.pos[t]) + 1).n);
  // Work unit: one token, one KV head, a run of that head's query heads; an item is a unit's
  // segment. Heads are split only while there are fewer items than threads (a unit reuses
  // each row tile across all its queries).
  const int64_t threads = ThreadPool::global().size();
  int64_t split = (G + kMaxUnit - 1) / kMaxUnit;
  while (p.n_tok * p.n_kv_head * split * max_seg < threads && split * 4 < G) ++split;
  const int64_t chunk = (G + split - 1) / split;
  const int64_t units = p.n_tok * p.n_kv_head * split;
  struct Unit {
    int64_t t, h0, nh;
  };
  auto unit_of = [&](int64_t u) {
    const int64_t t = u / (p.n_kv_head * split), g = (u / split) % p.n_kv_head, c = u % split;
    const int64_t h0 = g * G + c * chunk;
    return Unit{t, h0, std::max<int64_t>(0, std::min(chunk, G - c * chunk))};
  };
  // Partial states of the segments, in a buffer of the calling thread, allocated on its first
  // call (even when no token needs segments yet), so a decode that reaches a long context does
  // not allocate on the token path; waves of units keep it bounded.
  const int64_t state_floats = chunk * (p.dv + 2), unit_floats = max_seg * state_floats;
  thread_local std::vector<float> scratch;
  if (scratch.size() < std::max(kScratchFloats, size_t(unit_floats)))
    scratch.resize(std::max(kScratchFloats, size_t(unit_floats)));
  auto out_rows = [&](const Unit& w, float** acc) {
    for (int64_t i = 0; i < w.nh; ++i) acc[i] = p.out + w.t * p.o_tok_stride + (w.h0 + i) * p.o_head_stride;
  };

  if (max_seg == 1) {  // every token in one segment: fold straight into the output rows
    ThreadPool::global().parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
      float m[kMaxUnit], l[kMaxUnit];
      float* acc[kMaxUnit];
      for (int64_t u = u0; u < u1; ++u) {
        const Unit w = unit_of(u);
        if (w.nh == 0) continue;
        out_rows(w, acc);
        const SoftmaxState st{m, l, acc};
        attn_state_init(st, w.nh, p.dv);
        fold_dispatch(p, w.t, w.h0, w.nh, blocks, 0, kAllRows, st);
        attn_state_finish(st, w.nh, p.dv);
      }
    });
    return;
  }

  // Partial states [unit in wave][segment] = {m [chunk], l [chunk], acc [chunk][dv]}.
  float* const states = scratch.data();
  const int64_t wave = std::max<int64_t>(1, int64_t(scratch.size()) / unit_floats);
  for (int64_t w0 = 0; w0 < units; w0 += wave) {
    const int64_t nw = std::min(wave, units - w0);
    ThreadPool::global().parallel_for(nw * max_seg, 1, [&](int64_t i0, int64_t i1) {
      float* acc[kMaxUnit];
      for (int64_t i = i0; i < i1; ++i) {
        const Unit w = unit_of(w0 + i / max_seg);
        const int64_t seg = i % max_seg;
        float* st_base = states + i * state_floats;
        for (int64_t h = 0; h < w.nh; ++h) acc[h] = st_base + 2 * w.nh + h * p.dv;
        const SoftmaxState st{st_base, st_base + w.nh, acc};
        attn_state_init(st, w.nh, p.dv);
        const Segments sg = segments_of(int64_t(p.pos[w.t]) + 1);
        if (w.nh == 0 || seg >= sg.n) continue;
        fold_dispatch(p, w.t, w.h0, w.nh, blocks, seg * sg.len, (seg + 1) * sg.len, st);
      }
    });
    ThreadPool::global().parallel_for(nw, 1, [&](int64_t u0, int64_t u1) {
      float* acc[kMaxUnit];
      for (int64_t u = u0; u < u1; ++u) {
        const Unit w = unit_of(w0 + u);
        if (w.nh == 0) continue;
        out_rows(w, acc);
        const int64_t n = segments_of(int64_t(p.pos[w.t]) + 1).n;
        merge_states(states + u * unit_floats, n, state_floats, w.nh, p.dv, acc);
      }
    });
  }
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
