// Multi-head Latent Attention, forward and backward, in the naive form DeepSeek trains with:
//   q = W_q xn  or  W_qb RMSNorm(W_qa xn);            q_h = [q_nope (dn) ; RoPE(q_rope) (dr)]
//   [c ; k_r] = W_kva xn;  ckv = RMSNorm(c);  k_r ← RoPE(k_r)   (one k_r shared by all heads)
//   [k_nope,h ; v_h] = W_kvb,h ckv;           k_h = [k_nope,h ; k_r]
//   P_h = causal softmax(scale · q_h k_hᵀ);   o_h = P_h v_h;   out = W_o concat_h(o_h)
// The rope frequencies and softmax scale come from model/rope (the inference engine's).
#include <algorithm>
#include <cmath>

#include "core/threadpool.h"
#include "model/rope.h"
#include "train/block_train.h"
#include "train/ops_backward.h"

namespace whale::train {

template <typename T>
BlockContext<T> make_block_context(const ModelConfig& cfg, int64_t B, int64_t S) {
  BlockContext<T> bc;
  bc.cfg = &cfg;
  bc.B = B;
  bc.S = S;
  const int64_t dr = cfg.qk_rope_dim;
  const std::vector<float> inv_freq = rope_inv_freq(cfg, dr);
  std::vector<float> cs(static_cast<size_t>(dr));
  bc.rope_cs.resize(size_t(S * dr));
  for (int64_t s = 0; s < S; ++s) {
    rope_cos_sin(inv_freq, s, cs.data());
    std::copy(cs.begin(), cs.end(), bc.rope_cs.begin() + s * dr);
  }
  bc.kq_scale = T(mla_softmax_scale(cfg));
  return bc;
}

namespace {
constexpr int64_t kCausalChunk = 64;  // query rows per causal gemm chunk

// Sizes an activation buffer for this step; its producer writes every element.
template <typename T>
T* grow(Activations<T>& v, int64_t n) {
  v.resize(size_t(n));
  return v.data();
}

// A pool thread's scratch for one head at a time (grow-only, not zeroed). One head's S × S
// probabilities (256 KiB at S = 256) stay in L2 while the head's products use them.
template <typename T, int kSlot>
T* head_scratch(int64_t n) {
  thread_local Activations<T> buf;
  if (buf.size() < size_t(n)) buf.resize(size_t(n));
  return buf.data();
}

// Head h of sequence b: kt = K_hᵀ [dq][S] (nope part from the expanded kv, rope part shared),
// then p = causal softmax(scale · Q_h K_hᵀ) [S][S], zero above the diagonal. The forward and the
// backward both call this, so the backward's recomputed P is the forward's, bit for bit:
// keeping P for every head instead ([B, H, S, S], 8 MiB per layer here) cost more in memory
// traffic than the recomputation's one extra product.
template <typename T>
void head_probs(const BlockContext<T>& bc, const T* q, const T* kv, const T* kr, int64_t b,
                int64_t h, T* kt, T* p) {
  const ModelConfig& cfg = *bc.cfg;
  const int64_t S = bc.S, H = cfg.n_head, dn = cfg.qk_nope_dim, dr = cfg.qk_rope_dim,
                dq = dn + dr, dkv = dn + cfg.v_head_dim, r0 = b * S;
  for (int64_t u = 0; u < S; ++u) {
    for (int64_t j = 0; j < dn; ++j) kt[j * S + u] = kv[((r0 + u) * H + h) * dkv + j];
    for (int64_t j = 0; j < dr; ++j) kt[(dn + j) * S + u] = kr[(r0 + u) * dr + j];
  }
  const T* qh = q + (r0 * H + h) * dq;
  // Causal: query rows [a, e) only see keys < e, so each row chunk stops there.
  for (int64_t a = 0; a < S; a += kCausalChunk) {
    const int64_t e = std::min(S, a + kCausalChunk);
    gemm(e - a, e, dq, qh + a * H * dq, H * dq, 1, kt, S, p + a * S, S, false);
  }
  for (int64_t t = 0; t < S; ++t) {
    T* row = p + t * S;
    for (int64_t u = 0; u <= t; ++u) row[u] *= bc.kq_scale;
    softmax_forward(row, t + 1);
    std::fill(row + t + 1, row + S, T(0));  // causal mask
  }
}
}  // namespace

template <typename T>
void mla_forward(const BlockContext<T>& bc, const MlaWeights<T>& w, const T* xn, T* out,
                 MlaCache<T>& c) {
  const ModelConfig& cfg = *bc.cfg;
  const int64_t n = bc.n(), B = bc.B, S = bc.S, D = cfg.n_embd, H = cfg.n_head,
                dn = cfg.qk_nope_dim, dr = cfg.qk_rope_dim, dv = cfg.v_head_dim,
                C = cfg.kv_lora_rank, ql = cfg.q_lora_rank, dq = dn + dr, dkv = dn + dv;
  T* q = grow(c.q, n * H * dq);
  if (ql > 0) {
    linear_forward(xn, n, D, w.wq_a.v, ql, grow(c.qa, n * ql));
    rmsnorm_forward(c.qa.data(), w.q_a_norm.v, grow(c.qan, n * ql), grow(c.qa_rstd, n), n, ql,
                    cfg.rms_eps);
    linear_forward(c.qan.data(), n, ql, w.wq_b.v, H * dq, q);
  } else {
    linear_forward(xn, n, D, w.wq.v, H * dq, q);
  }
  Activations<T> kva(size_t(n * (C + dr)));
  linear_forward(xn, n, D, w.wkv_a.v, C + dr, kva.data());
  T* c_pre = grow(c.c_pre, n * C);
  T* kr = grow(c.kr, n * dr);
  ThreadPool::global().parallel_for(n, 64, [&](int64_t t0, int64_t t1) {  // tokens independent
    for (int64_t t = t0; t < t1; ++t) {
      const T* cs = bc.rope_cs.data() + (t % S) * dr;
      std::copy(kva.begin() + t * (C + dr), kva.begin() + t * (C + dr) + C, c_pre + t * C);
      std::copy(kva.begin() + t * (C + dr) + C, kva.begin() + (t + 1) * (C + dr), kr + t * dr);
      rope_forward(kr + t * dr, cs, dr / 2, cfg.rope_style);
      for (int64_t h = 0; h < H; ++h) rope_forward(q + (t * H + h) * dq + dn, cs, dr / 2, cfg.rope_style);
    }
  });
  T* ckv = grow(c.ckv, n * C);
  rmsnorm_forward(c_pre, w.kv_a_norm.v, ckv, grow(c.kv_rstd, n), n, C, cfg.rms_eps);
  T* kv = grow(c.kv, n * H * dkv);
  linear_forward(ckv, n, C, w.wkv_b.v, H * dkv, kv);

  T* ctx = grow(c.ctx, n * H * dv);
  ThreadPool::global().parallel_for(B * H, 1, [&](int64_t lo, int64_t hi) {
    T* kt = head_scratch<T, 0>(dq * S);
    T* p = head_scratch<T, 1>(S * S);
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / H, h = bh % H, r0 = b * S;
      head_probs(bc, q, kv, kr, b, h, kt, p);
      for (int64_t a = 0; a < S; a += kCausalChunk) {
        const int64_t e = std::min(S, a + kCausalChunk);
        gemm(e - a, dv, e, p + a * S, S, 1, kv + (r0 * H + h) * dkv + dn, H * dkv,
             ctx + ((r0 + a) * H + h) * dv, H * dv, false);
      }
    }
  });
  linear_forward(ctx, n, H * dv, w.wo.v, D, out);
}

template <typename T>
void mla_backward(const BlockContext<T>& bc, const MlaWeights<T>& w, const T* xn,
                  const T* dout, const MlaCache<T>& c, T* dxn) {
  const ModelConfig& cfg = *bc.cfg;
  const int64_t n = bc.n(), B = bc.B, S = bc.S, D = cfg.n_embd, H = cfg.n_head,
                dn = cfg.qk_nope_dim, dr = cfg.qk_rope_dim, dv = cfg.v_head_dim,
                C = cfg.kv_lora_rank, ql = cfg.q_lora_rank, dq = dn + dr, dkv = dn + dv;
  Activations<T> dctx = zeroed<T>(n * H * dv);
  linear_backward(dout, c.ctx.data(), n, H * dv, w.wo.v, D, dctx.data(), w.wo.g);

  std::vector<T> dq_(size_t(n * H * dq)), dkv_(size_t(n * H * dkv)), dkr_h(size_t(n * H * dr));
  const T* q = c.q.data();
  const T* kv = c.kv.data();
  const T* kr = c.kr.data();
  ThreadPool::global().parallel_for(B * H, 1, [&](int64_t lo, int64_t hi) {
    T* kt = head_scratch<T, 0>(dq * S);
    T* p = head_scratch<T, 1>(S * S);
    T* vt = head_scratch<T, 2>(dv * S);
    T* dp = head_scratch<T, 3>(S * S);
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / H, h = bh % H, r0 = b * S;
      head_probs(bc, q, kv, kr, b, h, kt, p);
      const T* dO = dctx.data() + (r0 * H + h) * dv;
      for (int64_t u = 0; u < S; ++u)
        for (int64_t j = 0; j < dv; ++j) vt[j * S + u] = kv[((r0 + u) * H + h) * dkv + dn + j];
      // dP = dO Vᵀ; dS = scale · P ⊙ (dP - Σ P⊙dP)
      for (int64_t a = 0; a < S; a += kCausalChunk) {
        const int64_t e = std::min(S, a + kCausalChunk);
        gemm(e - a, e, dv, dO + a * H * dv, H * dv, 1, vt, S, dp + a * S, S, false);
      }
      for (int64_t t = 0; t < S; ++t) {
        T* row = dp + t * S;
        const T* pr = p + t * S;
        double dot = 0;
        for (int64_t u = 0; u <= t; ++u) dot += double(pr[u]) * double(row[u]);
        for (int64_t u = 0; u <= t; ++u) row[u] = bc.kq_scale * pr[u] * (row[u] - T(dot));
        std::fill(row + t + 1, row + S, T(0));
      }
      const T* ds = dp;
      T* dqh = dq_.data() + (r0 * H + h) * dq;
      // dQ = dS K: nope part from the expanded K, rope part from the shared k_r
      // dK = dSᵀ Q, dV = Pᵀ dO: key rows [a, e) receive from query rows t >= a only.
      T* dkvh = dkv_.data() + (r0 * H + h) * dkv;
      const T* qh = q + (r0 * H + h) * dq;
      T* dkrh = dkr_h.data() + (r0 * H + h) * dr;
      for (int64_t a = 0; a < S; a += kCausalChunk) {
        const int64_t e = std::min(S, a + kCausalChunk);
        gemm(e - a, dn, e, ds + a * S, S, 1, kv + (r0 * H + h) * dkv, H * dkv,
             dqh + a * H * dq, H * dq, false);
        gemm(e - a, dr, e, ds + a * S, S, 1, kr + r0 * dr, dr, dqh + a * H * dq + dn, H * dq, false);
        gemm(e - a, dn, S - a, ds + a * S + a, 1, S, qh + a * H * dq, H * dq,
             dkvh + a * H * dkv, H * dkv, false);
        gemm(e - a, dr, S - a, ds + a * S + a, 1, S, qh + a * H * dq + dn, H * dq,
             dkrh + a * H * dr, H * dr, false);
        gemm(e - a, dv, S - a, p + a * S + a, 1, S, dO + a * H * dv, H * dv,
             dkvh + a * H * dkv + dn, H * dkv, false);
      }
    }
  });

  // Back through W_kvb, the latent norm and both RoPEs.
  Activations<T> dckv = zeroed<T>(n * C);
  Activations<T> dkva(size_t(n * (C + dr)));  // written in full below
  linear_backward(dkv_.data(), c.ckv.data(), n, C, w.wkv_b.v, H * dkv, dckv.data(), w.wkv_b.g);
  Activations<T> dc = zeroed<T>(n * C);
  rmsnorm_backward(dckv.data(), c.c_pre.data(), w.kv_a_norm.v, c.kv_rstd.data(), n, C, dc.data(),
                   w.kv_a_norm.g);
  ThreadPool::global().parallel_for(n, 64, [&](int64_t t0, int64_t t1) {  // tokens independent
    for (int64_t t = t0; t < t1; ++t) {
      const T* cs = bc.rope_cs.data() + (t % S) * dr;
      std::copy(dc.begin() + t * C, dc.begin() + (t + 1) * C, dkva.begin() + t * (C + dr));
      T* dk = dkva.data() + t * (C + dr) + C;
      std::fill(dk, dk + dr, T(0));
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < dr; ++j) dk[j] += dkr_h[size_t((t * H + h) * dr + j)];
      rope_backward(dk, cs, dr / 2, cfg.rope_style);
      for (int64_t h = 0; h < H; ++h) rope_backward(dq_.data() + (t * H + h) * dq + dn, cs, dr / 2, cfg.rope_style);
    }
  });
  linear_backward(dkva.data(), xn, n, D, w.wkv_a.v, C + dr, dxn, w.wkv_a.g);

  if (ql > 0) {
    Activations<T> dqan = zeroed<T>(n * ql), dqa = zeroed<T>(n * ql);
    linear_backward(dq_.data(), c.qan.data(), n, ql, w.wq_b.v, H * dq, dqan.data(), w.wq_b.g);
    rmsnorm_backward(dqan.data(), c.qa.data(), w.q_a_norm.v, c.qa_rstd.data(), n, ql, dqa.data(),
                     w.q_a_norm.g);
    linear_backward(dqa.data(), xn, n, D, w.wq_a.v, ql, dxn, w.wq_a.g);
  } else {
    linear_backward(dq_.data(), xn, n, D, w.wq.v, H * dq, dxn, w.wq.g);
  }
}

#define WHALE_INSTANTIATE(T)                                                                  \
  template BlockContext<T> make_block_context<T>(const ModelConfig&, int64_t, int64_t);       \
  template void mla_forward<T>(const BlockContext<T>&, const MlaWeights<T>&, const T*, T*,    \
                               MlaCache<T>&);                                                 \
  template void mla_backward<T>(const BlockContext<T>&, const MlaWeights<T>&, const T*,       \
                                const T*, const MlaCache<T>&, T*);

WHALE_INSTANTIATE(float)
WHALE_INSTANTIATE(double)
#undef WHALE_INSTANTIATE

}  // namespace whale::train
