// SwiGLU MLP and DeepSeekMoE, forward and backward.
// Routing (which experts each token takes) is the inference engine's route_token — scores,
// correction bias, group limits, top-k — and is not differentiated. The gate weights of the
// chosen experts are: w_k = p(e_k) [/ Σ_k p(e_k) when norm_topk_prob] · routed_scaling, with
// p = softmax or sigmoid of the router logits; gradients flow through p into mlp.gate.weight.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/threadpool.h"
#include "model/moe_routing.h"
#include "train/block_train.h"
#include "train/ops_backward.h"

namespace whale::train {

namespace {
// Columns per task when the routed experts' outputs are combined into (or their input
// gradients scattered back to) the token rows: the loops ran serially, ~2% of a 2-thread step.
constexpr int64_t kColumnSlice = 32;
}  // namespace

template <typename T>
void mlp_forward(const MlpWeights<T>& w, int64_t D, const T* x, int64_t m, T* y,
                 MlpCache<T>& c) {
  const int64_t F = w.width;
  c.a.resize(size_t(m * F));  // written in full below
  c.b.resize(size_t(m * F));
  c.h.resize(size_t(m * F));
  linear_forward(x, m, D, w.gate.v, F, c.a.data());
  linear_forward(x, m, D, w.up.v, F, c.b.data());
  swiglu_forward(c.a.data(), c.b.data(), c.h.data(), m * F);
  linear_forward(c.h.data(), m, F, w.down.v, D, y);
}

template <typename T>
void mlp_backward(const MlpWeights<T>& w, int64_t D, const T* x, int64_t m, const T* dy,
                  const MlpCache<T>& c, T* dx) {
  const int64_t F = w.width;
  Activations<T> dh = zeroed<T>(m * F), da = zeroed<T>(m * F), db = zeroed<T>(m * F);
  linear_backward(dy, c.h.data(), m, F, w.down.v, D, dh.data(), w.down.g);
  swiglu_backward(dh.data(), c.a.data(), c.b.data(), da.data(), db.data(), m * F);
  linear_backward(da.data(), x, m, D, w.gate.v, F, dx, w.gate.g);
  linear_backward(db.data(), x, m, D, w.up.v, F, dx, w.up.g);
}

namespace {

// L_bal of moe_forward's comment, from the scores and choices in c; keeps f for the backward.
template <typename T>
void sequence_balance_loss(const ModelConfig& cfg, int64_t n, int64_t seq_len, double alpha,
                           MoeCache<T>& c) {
  c.aux_alpha = alpha, c.aux_loss = 0, c.aux_f.clear();
  if (alpha == 0) return;
  if (!(alpha > 0)) fail("seq_aux_alpha must be >= 0, not {}", alpha);
  const int64_t E = cfg.n_expert, K = cfg.n_expert_used, T_s = seq_len > 0 ? seq_len : n;
  if (n % T_s != 0) fail("MoE: {} tokens are not whole sequences of {}", n, T_s);
  const int64_t n_seq = n / T_s;
  c.aux_seq_len = T_s;
  c.aux_f.assign(size_t(n_seq * E), T(0));
  double total = 0;
  for (int64_t b = 0; b < n_seq; ++b) {
    T* f = c.aux_f.data() + b * E;
    std::vector<double> P(size_t(E), 0.0);
    for (int64_t t = b * T_s; t < (b + 1) * T_s; ++t) {
      for (int64_t k = 0; k < K; ++k) f[c.chosen[size_t(t * K + k)]] += T(1);
      const T* s = c.scores.data() + t * E;
      double sum = 0;
      for (int64_t e = 0; e < E; ++e) sum += double(s[e]);
      for (int64_t e = 0; e < E; ++e) P[size_t(e)] += double(s[e]) / sum;
    }
    double seq = 0;
    for (int64_t e = 0; e < E; ++e) {
      f[e] *= T(double(E) / double(K * T_s));
      seq += double(f[e]) * P[size_t(e)] / double(T_s);
    }
    total += seq;
  }
  c.aux_loss = alpha * total / double(n_seq);
}

// Adds d L_bal / d s_{·,t} into dp: with g_i = α / n_seq · f_i / T and s' = s / Σ s,
// d/ds_j = (g_j - Σ_i g_i s'_i) / Σ s.
template <typename T>
void add_balance_grad(const MoeCache<T>& c, int64_t E, int64_t n, int64_t t, T* dp) {
  const int64_t T_s = c.aux_seq_len, n_seq = n / T_s;
  const T* f = c.aux_f.data() + (t / T_s) * E;
  const T* s = c.scores.data() + t * E;
  const T coef = T(c.aux_alpha / double(n_seq * T_s));
  T sum = 0, dot = 0;
  for (int64_t e = 0; e < E; ++e) sum += s[e];
  for (int64_t e = 0; e < E; ++e) dot += coef * f[e] * s[e] / sum;
  for (int64_t e = 0; e < E; ++e) dp[e] += (coef * f[e] - dot) / sum;
}

}  // namespace

template <typename T>
void moe_forward(const ModelConfig& cfg, const MoeWeights<T>& w, const T* xn, int64_t n, T* y,
                 MoeCache<T>& c, int64_t seq_len, double seq_aux_alpha) {
  const int64_t D = cfg.n_embd, E = cfg.n_expert, K = cfg.n_expert_used;
  std::vector<T> logits(size_t(n * E));
  linear_forward(xn, n, D, w.router.v, E, logits.data());
  c.scores = logits;
  for (int64_t t = 0; t < n; ++t) {
    T* p = c.scores.data() + t * E;
    if (cfg.scoring == ScoringFunc::Softmax) softmax_forward(p, E);
    else for (int64_t e = 0; e < E; ++e) p[e] = T(1) / (T(1) + std::exp(-p[e]));
  }

  // Selection: the inference router on float32 logits (as DeepSeek's reference scores them).
  const RouterParams rp{.scoring = cfg.scoring, .n_expert = E, .top_k = K,
                        .n_group = cfg.n_group, .topk_group = cfg.topk_group,
                        .norm_topk_prob = cfg.norm_topk_prob,
                        .routed_scaling = float(cfg.routed_scaling), .bias = w.bias};
  c.chosen.assign(size_t(n * K), 0);
  c.weights.assign(size_t(n * K), T(0));
  c.members.assign(size_t(E), {});
  ThreadPool::global().parallel_for(n, 64, [&](int64_t t0, int64_t t1) {  // tokens independent
    std::vector<float> lf(static_cast<size_t>(E)), wf(static_cast<size_t>(K)), scratch(size_t(3 * E));
    for (int64_t t = t0; t < t1; ++t) {
      for (int64_t e = 0; e < E; ++e) lf[size_t(e)] = float(logits[size_t(t * E + e)]);
      int32_t* ch = c.chosen.data() + t * K;
      route_token(rp, lf.data(), ch, wf.data(), scratch.data());
      const T* p = c.scores.data() + t * E;
      T sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += p[ch[k]];
      for (int64_t k = 0; k < K; ++k) {
        T wk = p[ch[k]];
        if (cfg.norm_topk_prob) wk /= sum;
        c.weights[size_t(t * K + k)] = wk * T(cfg.routed_scaling);
      }
    }
  });
  for (int64_t slot = 0; slot < n * K; ++slot)  // in token order, as the experts' rows
    c.members[size_t(c.chosen[size_t(slot)])].push_back(slot);

  sequence_balance_loss(cfg, n, seq_len, seq_aux_alpha, c);

  fill_zero(y, n * D);
  c.loads.assign(size_t(E), 0);
  c.xg.assign(size_t(E), {});
  c.ye.assign(size_t(E), {});
  c.expert_cache.assign(size_t(E), {});
  for (int64_t e = 0; e < E; ++e) c.loads[size_t(e)] = int64_t(c.members[size_t(e)].size());
  // One expert per task: each expert's products are small (its ~n·K/E rows), so running them
  // whole on one thread beats splitting each across the pool with a barrier per product.
  // The arithmetic per expert is the same either way (bit-identical results).
  ThreadPool::global().parallel_for(E, 1, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const auto& mem = c.members[size_t(e)];
      const int64_t m = int64_t(mem.size());
      if (m == 0) continue;
      auto& xg = c.xg[size_t(e)];
      auto& ye = c.ye[size_t(e)];
      xg.resize(size_t(m * D));
      ye.assign(size_t(m * D), T(0));
      for (int64_t i = 0; i < m; ++i) {
        const int64_t t = mem[size_t(i)] / K;
        std::copy(xn + t * D, xn + (t + 1) * D, xg.begin() + i * D);
      }
      mlp_forward(w.experts[size_t(e)], D, xg.data(), m, ye.data(), c.expert_cache[size_t(e)]);
    }
  });
  // Combine, over slices of the D columns: each entry of y still takes its experts in order.
  ThreadPool::global().parallel_for(D, kColumnSlice, [&](int64_t j0, int64_t j1) {
    for (int64_t e = 0; e < E; ++e) {
      const auto& mem = c.members[size_t(e)];
      const int64_t m = int64_t(mem.size());
      const auto& ye = c.ye[size_t(e)];
      for (int64_t i = 0; i < m; ++i) {
        const int64_t t = mem[size_t(i)] / K;
        const T wk = c.weights[size_t(mem[size_t(i)])];
        for (int64_t j = j0; j < j1; ++j) y[t * D + j] += wk * ye[size_t(i * D + j)];
      }
    }
  });
  if (cfg.n_expert_shared > 0) {
    Activations<T> ys(size_t(n * D));  // written in full by mlp_forward
    mlp_forward(w.shared, D, xn, n, ys.data(), c.shared_cache);
    add_into(y, ys.data(), n * D);
  }
}

template <typename T>
void moe_backward(const ModelConfig& cfg, const MoeWeights<T>& w, const T* xn, int64_t n,
                  const T* dy, const MoeCache<T>& c, T* dxn) {
  const int64_t D = cfg.n_embd, E = cfg.n_expert, K = cfg.n_expert_used;
  std::vector<T> dweights(size_t(n * K), T(0));  // slot t*K + k: written by one expert only
  std::vector<std::vector<T>> dxg_of(static_cast<size_t>(E));
  ThreadPool::global().parallel_for(E, 1, [&](int64_t e0, int64_t e1) {  // see moe_forward
    for (int64_t e = e0; e < e1; ++e) {
      const auto& mem = c.members[size_t(e)];
      const int64_t m = int64_t(mem.size());
      if (m == 0) continue;
      const auto& ye = c.ye[size_t(e)];
      std::vector<T> dye(size_t(m * D));
      std::vector<T>& dxg = dxg_of[size_t(e)];
      dxg.assign(size_t(m * D), T(0));
      for (int64_t i = 0; i < m; ++i) {
        const int64_t slot = mem[size_t(i)], t = slot / K;
        const T wk = c.weights[size_t(slot)];
        double dot = 0;
        for (int64_t j = 0; j < D; ++j) {
          dot += double(dy[t * D + j]) * double(ye[size_t(i * D + j)]);
          dye[size_t(i * D + j)] = wk * dy[t * D + j];
        }
        dweights[size_t(slot)] = T(dot);
      }
      mlp_backward(w.experts[size_t(e)], D, c.xg[size_t(e)].data(), m, dye.data(),
                   c.expert_cache[size_t(e)], dxg.data());
    }
  });
  ThreadPool::global().parallel_for(D, kColumnSlice, [&](int64_t j0, int64_t j1) {  // as the combine
    for (int64_t e = 0; e < E; ++e) {
      const auto& mem = c.members[size_t(e)];
      const int64_t m = int64_t(mem.size());
      const std::vector<T>& dxg = dxg_of[size_t(e)];
      for (int64_t i = 0; i < m; ++i) {
        const int64_t t = mem[size_t(i)] / K;
        for (int64_t j = j0; j < j1; ++j) dxn[t * D + j] += dxg[size_t(i * D + j)];
      }
    }
  });
  if (cfg.n_expert_shared > 0) mlp_backward(w.shared, D, xn, n, dy, c.shared_cache, dxn);

  // Gate weights → scores → router logits.
  std::vector<T> dlogits(size_t(n * E), T(0));
  const T scale = T(cfg.routed_scaling);
  ThreadPool::global().parallel_for(n, 64, [&](int64_t t0, int64_t t1) {  // tokens independent
    std::vector<T> dp(static_cast<size_t>(E));
    for (int64_t t = t0; t < t1; ++t) {
      const T* p = c.scores.data() + t * E;
      const int32_t* ch = c.chosen.data() + t * K;
      const T* dw = dweights.data() + t * K;
      std::fill(dp.begin(), dp.end(), T(0));
      if (cfg.norm_topk_prob) {
        // w_k = s · u_k / U, U = Σ u  ⇒  du_k = s · (dw_k / U - Σ_j dw_j u_j / U²)
        T U = 0, dot = 0;
        for (int64_t k = 0; k < K; ++k) {
          U += p[ch[k]];
          dot += dw[k] * p[ch[k]];
        }
        for (int64_t k = 0; k < K; ++k) dp[size_t(ch[k])] += scale * (dw[k] / U - dot / (U * U));
      } else {
        for (int64_t k = 0; k < K; ++k) dp[size_t(ch[k])] += scale * dw[k];
      }
      if (c.aux_alpha > 0) add_balance_grad(c, E, n, t, dp.data());
      T* dl = dlogits.data() + t * E;
      if (cfg.scoring == ScoringFunc::Softmax) {
        softmax_backward(p, dp.data(), dl, E);
      } else {
        for (int64_t e = 0; e < E; ++e) dl[e] += dp[size_t(e)] * p[e] * (T(1) - p[e]);
      }
    }
  });
  linear_backward(dlogits.data(), xn, n, D, w.router.v, E, dxn, w.router.g);
}

#define WHALE_INSTANTIATE(T)                                                                    \
  template void mlp_forward<T>(const MlpWeights<T>&, int64_t, const T*, int64_t, T*,            \
                               MlpCache<T>&);                                                   \
  template void mlp_backward<T>(const MlpWeights<T>&, int64_t, const T*, int64_t, const T*,     \
                                const MlpCache<T>&, T*);                                        \
  template void moe_forward<T>(const ModelConfig&, const MoeWeights<T>&, const T*, int64_t, T*, \
                               MoeCache<T>&, int64_t, double);                                  \
  template void moe_backward<T>(const ModelConfig&, const MoeWeights<T>&, const T*, int64_t,    \
                                const T*, const MoeCache<T>&, T*);

WHALE_INSTANTIATE(float)
WHALE_INSTANTIATE(double)
#undef WHALE_INSTANTIATE

}  // namespace whale::train
