// The decoder block: x += MLA(RMSNorm(x)); x += FFN(RMSNorm(x)), and its backward.
#include "train/block_train.h"

#include <algorithm>

#include "train/ops_backward.h"

namespace whale::train {

template <typename T>
void block_forward(const BlockContext<T>& bc, const BlockWeights<T>& w, T* x, BlockCache<T>& c) {
  const ModelConfig& cfg = *bc.cfg;
  const int64_t n = bc.n(), D = cfg.n_embd;
  c.x_in.resize(size_t(n * D));
  copy_into(x, n * D, c.x_in.data());
  c.xn1.resize(size_t(n * D));  // rmsnorm_forward writes every element
  c.rstd1.resize(size_t(n));
  rmsnorm_forward(x, w.attn_norm.v, c.xn1.data(), c.rstd1.data(), n, D, cfg.rms_eps);
  Activations<T> out(size_t(n * D));  // written in full by mla_forward, then by the FFN
  mla_forward(bc, w.mla, c.xn1.data(), out.data(), c.mla);
  add_into(x, out.data(), n * D);

  c.x_mid.resize(size_t(n * D));
  copy_into(x, n * D, c.x_mid.data());
  c.xn2.resize(size_t(n * D));
  c.rstd2.resize(size_t(n));
  rmsnorm_forward(x, w.ffn_norm.v, c.xn2.data(), c.rstd2.data(), n, D, cfg.rms_eps);
  if (w.moe) moe_forward(cfg, w.moe_w, c.xn2.data(), n, out.data(), c.moe, bc.S, bc.seq_aux_alpha);
  else mlp_forward(w.dense, D, c.xn2.data(), n, out.data(), c.dense);
  add_into(x, out.data(), n * D);
}

template <typename T>
void block_backward(const BlockContext<T>& bc, const BlockWeights<T>& w, T* dx,
                    const BlockCache<T>& c) {
  const ModelConfig& cfg = *bc.cfg;
  const int64_t n = bc.n(), D = cfg.n_embd;
  // FFN half: d x_mid = dx + normᵀ(FFNᵀ(dx))
  Activations<T> dxn = zeroed<T>(n * D);
  if (w.moe) moe_backward(cfg, w.moe_w, c.xn2.data(), n, dx, c.moe, dxn.data());
  else mlp_backward(w.dense, D, c.xn2.data(), n, dx, c.dense, dxn.data());
  rmsnorm_backward(dxn.data(), c.x_mid.data(), w.ffn_norm.v, c.rstd2.data(), n, D, dx,
                   w.ffn_norm.g);
  // Attention half.
  fill_zero(dxn.data(), n * D);
  mla_backward(bc, w.mla, c.xn1.data(), dx, c.mla, dxn.data());
  rmsnorm_backward(dxn.data(), c.x_in.data(), w.attn_norm.v, c.rstd1.data(), n, D, dx,
                   w.attn_norm.g);
}

template void block_forward<float>(const BlockContext<float>&, const BlockWeights<float>&,
                                   float*, BlockCache<float>&);
template void block_forward<double>(const BlockContext<double>&, const BlockWeights<double>&,
                                    double*, BlockCache<double>&);
template void block_backward<float>(const BlockContext<float>&, const BlockWeights<float>&,
                                    float*, const BlockCache<float>&);
template void block_backward<double>(const BlockContext<double>&, const BlockWeights<double>&,
                                     double*, const BlockCache<double>&);

}  // namespace whale::train
