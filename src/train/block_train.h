// One DeepSeek decoder block for training — MLA (naive form, as DeepSeek's reference trains)
// and a dense SwiGLU or MoE FFN — with the activations its backward needs. Math: DESIGN.md §4
// and model/deepseek2.cpp (inference); dimension legend in model/config.h. Tokens are laid out
// as B sequences of S consecutive rows (n = B·S), each sequence at positions 0..S-1.
// Gradient convention: see train/ops_backward.h (backward ADDS into weight and input grads).
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "model/config.h"
#include "train/ops_backward.h"

namespace whale::train {

// Allocator whose resize() leaves new elements default-initialised (uninitialised floats):
// every activation buffer below is written in full by the op that produces it, so the
// zero-fill of std::vector was ~100 MB of serial memset per step of bench-config.json.
template <typename T>
struct UninitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <class U>
  UninitAllocator(const UninitAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <typename T>
using Activations = std::vector<T, UninitAllocator<T>>;

// A gradient buffer that products accumulate into, zero-filled across the pool.
template <typename T>
Activations<T> zeroed(int64_t n) {
  Activations<T> v(static_cast<size_t>(n));
  fill_zero(v.data(), n);
  return v;
}

// A tensor's value and the gradient it accumulates into (g null: not trained).
template <typename T>
struct Slot {
  const T* v = nullptr;
  T* g = nullptr;
};

// Shapes and constants shared by every block of one forward pass.
template <typename T>
struct BlockContext {
  const ModelConfig* cfg = nullptr;
  int64_t B = 0, S = 0;             // sequences, tokens per sequence
  std::vector<T> rope_cs;           // [S][dr]: cos, sin of position s for each frequency
  T kq_scale = 1;                   // mla_softmax_scale
  double seq_aux_alpha = 0;         // weight α of the sequence-wise balance loss (0: off)
  int64_t n() const { return B * S; }
};

template <typename T>
BlockContext<T> make_block_context(const ModelConfig& cfg, int64_t B, int64_t S);

template <typename T>
struct MlaWeights {
  Slot<T> wq;                       // [H*(dn+dr), D]       q_lora == 0
  Slot<T> wq_a, q_a_norm, wq_b;     // [q_lora, D], [q_lora], [H*(dn+dr), q_lora]
  Slot<T> wkv_a;                    // [C+dr, D]
  Slot<T> kv_a_norm;                // [C]
  Slot<T> wkv_b;                    // [H*(dn+dv), C]: per head dn K rows then dv V rows
  Slot<T> wo;                       // [D, H*dv]
};

template <typename T>
struct MlaCache {
  Activations<T> qa, qa_rstd, qan;  // [n, q_lora], [n], [n, q_lora]
  Activations<T> q;                 // [n, H, dn+dr] after RoPE
  Activations<T> c_pre, kv_rstd;    // [n, C] latent before its norm, [n]
  Activations<T> ckv;               // [n, C] normalised latent
  Activations<T> kr;                // [n, dr] shared rotary key after RoPE
  Activations<T> kv;                // [n, H, dn+dv] expanded per-head K_nope and V
  Activations<T> ctx;               // [n, H*dv] attention output before o_proj
};

// out[n, D] = MLA(xn); the backward adds d xn into dxn.
template <typename T>
void mla_forward(const BlockContext<T>& bc, const MlaWeights<T>& w, const T* xn, T* out,
                 MlaCache<T>& cache);
template <typename T>
void mla_backward(const BlockContext<T>& bc, const MlaWeights<T>& w, const T* xn,
                  const T* dout, const MlaCache<T>& cache, T* dxn);

// SwiGLU MLP: y = W_down (silu(W_gate x) ⊙ W_up x), width F.
template <typename T>
struct MlpWeights {
  Slot<T> gate, up;                 // [F, D]
  Slot<T> down;                     // [D, F]
  int64_t width = 0;
};

template <typename T>
struct MlpCache {
  Activations<T> a, b, h;           // [m, F] gate and up projections, silu(a)⊙b
};

template <typename T>
void mlp_forward(const MlpWeights<T>& w, int64_t D, const T* x, int64_t m, T* y,
                 MlpCache<T>& cache);
template <typename T>
void mlp_backward(const MlpWeights<T>& w, int64_t D, const T* x, int64_t m, const T* dy,
                  const MlpCache<T>& cache, T* dx);

template <typename T>
struct MoeWeights {
  Slot<T> router;                   // [E, D] (mlp.gate.weight)
  const float* bias = nullptr;      // [E] e_score_correction_bias: selection only, not trained
  std::vector<MlpWeights<T>> experts;
  MlpWeights<T> shared;             // width S·Fe; absent when S == 0
};

template <typename T>
struct MoeCache {
  std::vector<T> scores;                  // [n, E] softmax or sigmoid of the router logits
  std::vector<int32_t> chosen;            // [n, K] routed experts (not differentiated)
  std::vector<T> weights;                 // [n, K] gate weights
  std::vector<std::vector<int64_t>> members;  // per expert: rows (t*K + k) that chose it
  std::vector<std::vector<T>> xg, ye;     // per expert: gathered inputs, outputs [m, D]
  std::vector<MlpCache<T>> expert_cache;
  MlpCache<T> shared_cache;
  std::vector<int64_t> loads;             // [E] tokens routed to each expert
  // Sequence-wise balance loss (DeepSeek-V3 eq. 17-20), when its α > 0.
  double aux_alpha = 0, aux_loss = 0;
  int64_t aux_seq_len = 0;                // tokens per sequence
  std::vector<T> aux_f;                   // [sequences, E] f_i: constants of the gradient
};

// seq_len, seq_aux_alpha: the rows are sequences of seq_len tokens (0: one sequence of n), and
// α > 0 adds the sequence-wise balance loss L_bal = α · mean over sequences of Σ_i f_i P_i,
//   f_i = E / (K · T) · #{t in the sequence routed to i},  P_i = 1/T Σ_t s_{i,t} / Σ_j s_{j,t},
// into cache.aux_loss; moe_backward adds its gradient through the scores s (f is a constant).
template <typename T>
void moe_forward(const ModelConfig& cfg, const MoeWeights<T>& w, const T* xn, int64_t n, T* y,
                 MoeCache<T>& cache, int64_t seq_len = 0, double seq_aux_alpha = 0);
template <typename T>
void moe_backward(const ModelConfig& cfg, const MoeWeights<T>& w, const T* xn, int64_t n,
                  const T* dy, const MoeCache<T>& cache, T* dxn);

template <typename T>
struct BlockWeights {
  Slot<T> attn_norm, ffn_norm;      // [D] input_layernorm, post_attention_layernorm
  MlaWeights<T> mla;
  bool moe = false;
  MlpWeights<T> dense;
  MoeWeights<T> moe_w;
};

template <typename T>
struct BlockCache {
  std::vector<T> x_in, x_mid;       // block input, the stream after attention
  Activations<T> xn1, rstd1;        // attention norm of x_in
  Activations<T> xn2, rstd2;        // FFN norm of x_mid
  MlaCache<T> mla;
  MlpCache<T> dense;
  MoeCache<T> moe;
};

// x[n, D] ← x + MLA(norm(x)); x ← x + FFN(norm(x)).
template <typename T>
void block_forward(const BlockContext<T>& bc, const BlockWeights<T>& w, T* x, BlockCache<T>& c);
// dx: d loss / d block output on entry, d loss / d block input on return.
template <typename T>
void block_backward(const BlockContext<T>& bc, const BlockWeights<T>& w, T* dx,
                    const BlockCache<T>& c);

}  // namespace whale::train
