// deepseek2 training forward + backward (see deepseek_train.h). Data flow of one batch:
//   x = Emb(tokens); x = Block_l(x) for each layer; h = RMSNorm(x); logits = head(h)
//   loss_main = mean CE(logits, targets)
//   MTP (DeepSeek-V3 §2.2, the layout vLLM/SGLang/llama.cpp load): for positions i < S-1,
//   x' = W_eh [RMSNorm_e(Emb(t_{i+1})) ; RMSNorm_h(h_i)]  (embedding FIRST, h after the final
//   norm); x' = Block_mtp(x'); loss_mtp = mean CE(head(RMSNorm_shared(x')), t_{i+2})
//   loss_total = loss_main + λ · loss_mtp; the MTP module shares the embedding and the head.
#include "train/deepseek_train.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/threadpool.h"
#include "train/ops_backward.h"

namespace whale::train {

namespace {

std::string layer_prefix(int64_t il) { return fmt::format("model.layers.{}.", il); }

// Calls `add` for every tensor of block `il` in a fixed order (one list for requests and binding).
template <typename F>
void for_block_tensors(const ModelConfig& c, int64_t il, bool with_bias, F&& add) {
  const std::string p = layer_prefix(il);
  const int64_t D = c.n_embd, H = c.n_head, dq = c.qk_nope_dim + c.qk_rope_dim,
                C = c.kv_lora_rank, Fe = c.n_ff_expert;
  add(TensorRequest{p + "input_layernorm.weight", {D}});
  if (c.q_lora_rank > 0) {
    add(TensorRequest{p + "self_attn.q_a_proj.weight", {c.q_lora_rank, D}});
    add(TensorRequest{p + "self_attn.q_a_layernorm.weight", {c.q_lora_rank}});
    add(TensorRequest{p + "self_attn.q_b_proj.weight", {H * dq, c.q_lora_rank}});
  } else {
    add(TensorRequest{p + "self_attn.q_proj.weight", {H * dq, D}});
  }
  add(TensorRequest{p + "self_attn.kv_a_proj_with_mqa.weight", {C + c.qk_rope_dim, D}});
  add(TensorRequest{p + "self_attn.kv_a_layernorm.weight", {C}});
  add(TensorRequest{p + "self_attn.kv_b_proj.weight", {H * (c.qk_nope_dim + c.v_head_dim), C}});
  add(TensorRequest{p + "self_attn.o_proj.weight", {D, H * c.v_head_dim}});
  add(TensorRequest{p + "post_attention_layernorm.weight", {D}});
  if (!c.is_moe_layer(il)) {
    add(TensorRequest{p + "mlp.gate_proj.weight", {c.n_ff, D}});
    add(TensorRequest{p + "mlp.up_proj.weight", {c.n_ff, D}});
    add(TensorRequest{p + "mlp.down_proj.weight", {D, c.n_ff}});
    return;
  }
  add(TensorRequest{p + "mlp.gate.weight", {c.n_expert, D}});
  if (with_bias)
    add(TensorRequest{p + "mlp.gate.e_score_correction_bias", {c.n_expert}, false, true});
  for (int64_t e = 0; e < c.n_expert; ++e) {
    const std::string q = fmt::format("{}mlp.experts.{}.", p, e);
    add(TensorRequest{q + "gate_proj.weight", {Fe, D}});
    add(TensorRequest{q + "up_proj.weight", {Fe, D}});
    add(TensorRequest{q + "down_proj.weight", {D, Fe}});
  }
  if (c.n_expert_shared > 0) {
    const int64_t Fs = c.n_expert_shared * Fe;
    add(TensorRequest{p + "mlp.shared_experts.gate_proj.weight", {Fs, D}});
    add(TensorRequest{p + "mlp.shared_experts.up_proj.weight", {Fs, D}});
    add(TensorRequest{p + "mlp.shared_experts.down_proj.weight", {D, Fs}});
  }
}

template <typename F>
void for_model_tensors(const ModelConfig& c, bool with_bias, F&& add) {
  const int64_t D = c.n_embd;
  add(TensorRequest{"model.embed_tokens.weight", {c.n_vocab, D}});
  for (int64_t il = 0; il < c.n_layer; ++il) for_block_tensors(c, il, with_bias, add);
  for (int64_t k = 0; k < c.n_mtp_layers; ++k) {
    const std::string p = layer_prefix(c.n_layer + k);
    add(TensorRequest{p + "enorm.weight", {D}});
    add(TensorRequest{p + "hnorm.weight", {D}});
    add(TensorRequest{p + "eh_proj.weight", {D, 2 * D}});
    for_block_tensors(c, c.n_layer + k, with_bias, add);
    add(TensorRequest{p + "shared_head.norm.weight", {D}});
  }
  add(TensorRequest{"model.norm.weight", {D}});
  if (!c.tie_embeddings) add(TensorRequest{"lm_head.weight", {c.n_vocab, D}});
}

}  // namespace

std::vector<TensorRequest> deepseek_tensor_requests(const ModelConfig& cfg, bool with_bias) {
  std::vector<TensorRequest> out;
  for_model_tensors(cfg, with_bias, [&](TensorRequest r) { out.push_back(std::move(r)); });
  return out;
}

void check_trainable_config(const ModelConfig& c, const std::string& source) {
  if (c.arch != Arch::Deepseek2)
    fail("{}: training supports the deepseek2 architecture (DeepSeek-V2/V3) only, not {}", source,
         arch_name(c.arch));
  if (c.n_mtp_layers > 1)
    fail("{}: num_nextn_predict_layers {} is not supported (0 or 1)", source, c.n_mtp_layers);
  if (c.qk_rope_dim % 2 != 0) fail("{}: qk_rope_head_dim must be even", source);
  if (c.n_expert > 0 && (c.n_expert_used < 1 || c.n_expert_used > c.n_expert))
    fail("{}: num_experts_per_tok must lie in [1, n_routed_experts]", source);
  if (c.n_group < 1 || (c.n_expert > 0 && c.n_expert % c.n_group != 0) || c.topk_group < 1 ||
      c.topk_group > c.n_group)
    fail("{}: n_group must divide n_routed_experts and topk_group lie in [1, n_group]", source);
  if (c.n_group > 1 && c.topk_group * (c.n_expert / c.n_group) < c.n_expert_used)
    fail("{}: the kept groups hold fewer experts than num_experts_per_tok", source);
}

template <typename T>
BlockWeights<T> DeepseekEngine<T>::bind_block(const Binder<T>& bind, int64_t il) {
  BlockWeights<T> b;
  const ModelConfig& c = cfg_;
  const std::string p = layer_prefix(il);
  // Binds every tensor of the block through the same list that deepseek_tensor_requests uses.
  std::vector<std::pair<std::string, Slot<T>>> got;
  for_block_tensors(c, il, true, [&](const TensorRequest& r) { got.emplace_back(r.name, bind(r)); });
  auto slot = [&](const std::string& suffix) {
    for (auto& [name, s] : got)
      if (name == p + suffix) return s;
    return Slot<T>{};
  };
  b.attn_norm = slot("input_layernorm.weight");
  b.ffn_norm = slot("post_attention_layernorm.weight");
  b.mla.wq = slot("self_attn.q_proj.weight");
  b.mla.wq_a = slot("self_attn.q_a_proj.weight");
  b.mla.q_a_norm = slot("self_attn.q_a_layernorm.weight");
  b.mla.wq_b = slot("self_attn.q_b_proj.weight");
  b.mla.wkv_a = slot("self_attn.kv_a_proj_with_mqa.weight");
  b.mla.kv_a_norm = slot("self_attn.kv_a_layernorm.weight");
  b.mla.wkv_b = slot("self_attn.kv_b_proj.weight");
  b.mla.wo = slot("self_attn.o_proj.weight");
  b.moe = c.is_moe_layer(il);
  if (!b.moe) {
    b.dense = {slot("mlp.gate_proj.weight"), slot("mlp.up_proj.weight"), slot("mlp.down_proj.weight"), c.n_ff};
    return b;
  }
  b.moe_w.router = slot("mlp.gate.weight");
  if (const Slot<T> bias = slot("mlp.gate.e_score_correction_bias"); bias.v) {
    biases_.emplace_back(bias.v, bias.v + c.n_expert);
    b.moe_w.bias = biases_.back().data();  // inner buffers survive the outer vector growing
  }
  for (int64_t e = 0; e < c.n_expert; ++e) {
    const std::string q = fmt::format("mlp.experts.{}.", e);
    b.moe_w.experts.push_back({slot(q + "gate_proj.weight"), slot(q + "up_proj.weight"),
                               slot(q + "down_proj.weight"), c.n_ff_expert});
  }
  if (c.n_expert_shared > 0)
    b.moe_w.shared = {slot("mlp.shared_experts.gate_proj.weight"),
                      slot("mlp.shared_experts.up_proj.weight"),
                      slot("mlp.shared_experts.down_proj.weight"), c.n_expert_shared * c.n_ff_expert};
  return b;
}

template <typename T>
DeepseekEngine<T>::DeepseekEngine(const ModelConfig& cfg, const Binder<T>& bind) : cfg_(cfg) {
  check_trainable_config(cfg, "model");
  const int64_t D = cfg.n_embd;
  embed_ = bind({"model.embed_tokens.weight", {cfg.n_vocab, D}});
  for (int64_t il = 0; il < cfg.n_layer; ++il) blocks_.push_back(bind_block(bind, il));
  for (int64_t k = 0; k < cfg.n_mtp_layers; ++k) {
    const std::string p = layer_prefix(cfg.n_layer + k);
    MtpWeights m;
    m.enorm = bind({p + "enorm.weight", {D}});
    m.hnorm = bind({p + "hnorm.weight", {D}});
    m.eh_proj = bind({p + "eh_proj.weight", {D, 2 * D}});
    m.block = bind_block(bind, cfg.n_layer + k);
    m.head_norm = bind({p + "shared_head.norm.weight", {D}});
    mtp_.push_back(std::move(m));
  }
  final_norm_ = bind({"model.norm.weight", {D}});
  head_ = cfg.tie_embeddings ? embed_ : bind({"lm_head.weight", {cfg.n_vocab, D}});
}

namespace {
void check_batch(const Batch& b, int64_t V) {
  if (b.B <= 0 || b.T <= 0) fail("batch: needs at least one sequence of at least one token");
  const size_t n = size_t(b.B * b.T);
  if (b.tokens.size() != n || b.targets.size() != n)
    fail("batch: tokens and targets must each hold B·T = {} ids", n);
  for (size_t i = 0; i < n; ++i)
    if (b.tokens[i] < 0 || b.tokens[i] >= V || b.targets[i] < 0 || b.targets[i] >= V)
      fail("batch: token id at position {} is outside the vocabulary [0, {})", i, V);
}
}  // namespace

// The MTP module over positions i < S-1 of every sequence (its own causal block at those
// positions), predicting t_{i+2}. Adds d loss / d h (main final-norm output) into dh.
template <typename T>
void DeepseekEngine<T>::mtp_forward_backward(const Batch& batch, double mtp_lambda,
                                             const std::vector<T>& h, Activations<T>& dh,
                                             Result& res) {
  const ModelConfig& c = cfg_;
  const MtpWeights& m = mtp_[0];
  const int64_t B = batch.B, S = batch.T, D = c.n_embd, V = c.n_vocab;
  const int64_t S2 = S - 1, n2 = B * S2;
  BlockContext<T> bc2 = make_block_context<T>(c, B, S2);
  bc2.seq_aux_alpha = seq_aux_alpha_;
  std::vector<int32_t> next_tok(static_cast<size_t>(n2)), labels(static_cast<size_t>(n2));  // [n2]
  std::vector<T> e(size_t(n2 * D)), hin(size_t(n2 * D));
  auto& pool = ThreadPool::global();
  pool.parallel_for(n2, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t src = (r / S2) * S + r % S2;
      next_tok[size_t(r)] = batch.tokens[size_t(src + 1)];
      labels[size_t(r)] = batch.targets[size_t(src + 1)];
      std::copy(embed_.v + next_tok[size_t(r)] * D, embed_.v + (next_tok[size_t(r)] + 1) * D,
                e.begin() + r * D);
      std::copy(h.begin() + src * D, h.begin() + (src + 1) * D, hin.begin() + r * D);
    }
  });
  const size_t rows = size_t(n2), elems = size_t(n2 * D);
  std::vector<T> en(elems), e_rstd(rows), hn(elems), hn_rstd(rows);
  rmsnorm_forward(e.data(), m.enorm.v, en.data(), e_rstd.data(), n2, D, c.rms_eps);
  rmsnorm_forward(hin.data(), m.hnorm.v, hn.data(), hn_rstd.data(), n2, D, c.rms_eps);
  std::vector<T> cat(size_t(n2 * 2 * D));
  pool.parallel_for(n2, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      std::copy(en.begin() + r * D, en.begin() + (r + 1) * D, cat.begin() + r * 2 * D);
      std::copy(hn.begin() + r * D, hn.begin() + (r + 1) * D, cat.begin() + r * 2 * D + D);
    }
  });
  std::vector<T> x2(size_t(n2 * D));
  linear_forward(cat.data(), n2, 2 * D, m.eh_proj.v, D, x2.data());
  BlockCache<T> cache2;
  block_forward(bc2, m.block, x2.data(), cache2);
  res.loss_aux += cache2.moe.aux_loss;
  std::vector<T> h2(size_t(n2 * D)), h2_rstd(static_cast<size_t>(n2));
  rmsnorm_forward(x2.data(), m.head_norm.v, h2.data(), h2_rstd.data(), n2, D, c.rms_eps);
  Activations<T> dh2 = zeroed<T>(n2 * D);
  {
    Activations<T> logits(size_t(n2 * V));  // 16 MB, written in full: no zero-fill
    linear_forward(h2.data(), n2, D, head_.v, V, logits.data());
    res.loss_mtp = cross_entropy_forward_backward(logits.data(), labels.data(), n2, V,
                                                  mtp_lambda / double(n2)) / double(n2);
    linear_backward(logits.data(), h2.data(), n2, D, head_.v, V, dh2.data(), head_.g);
  }
  Activations<T> dx2 = zeroed<T>(n2 * D);
  rmsnorm_backward(dh2.data(), x2.data(), m.head_norm.v, h2_rstd.data(), n2, D, dx2.data(),
                   m.head_norm.g);
  block_backward(bc2, m.block, dx2.data(), cache2);
  Activations<T> dcat = zeroed<T>(n2 * 2 * D);
  linear_backward(dx2.data(), cat.data(), n2, 2 * D, m.eh_proj.v, D, dcat.data(), m.eh_proj.g);
  std::vector<T> den(size_t(n2 * D)), dhn(size_t(n2 * D));
  pool.parallel_for(n2, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      std::copy(dcat.begin() + r * 2 * D, dcat.begin() + r * 2 * D + D, den.begin() + r * D);
      std::copy(dcat.begin() + r * 2 * D + D, dcat.begin() + (r + 1) * 2 * D, dhn.begin() + r * D);
    }
  });
  Activations<T> de = zeroed<T>(n2 * D), dhin = zeroed<T>(n2 * D);
  rmsnorm_backward(den.data(), e.data(), m.enorm.v, e_rstd.data(), n2, D, de.data(), m.enorm.g);
  rmsnorm_backward(dhn.data(), hin.data(), m.hnorm.v, hn_rstd.data(), n2, D, dhin.data(),
                   m.hnorm.g);
  // Over column slices, each taking the rows in order (tokens repeat: same sums as serially).
  pool.parallel_for(D, 32, [&](int64_t j0, int64_t j1) {
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < S2; ++i) {
        const int64_t r = b * S2 + i, src = b * S + i;
        for (int64_t j = j0; j < j1; ++j) dh[size_t(src * D + j)] += dhin[size_t(r * D + j)];
        if (embed_.g)
          for (int64_t j = j0; j < j1; ++j)
            embed_.g[next_tok[size_t(r)] * D + j] += de[size_t(r * D + j)];
      }
  });
  if (m.block.moe) {
    res.gates.push_back(layer_prefix(c.n_layer) + "mlp.gate");
    res.loads.push_back(cache2.moe.loads);
  }
}

template <typename T>
typename DeepseekEngine<T>::Result DeepseekEngine<T>::forward_backward(const Batch& batch,
                                                                        double mtp_lambda) {
  const ModelConfig& c = cfg_;
  check_batch(batch, c.n_vocab);
  const int64_t B = batch.B, S = batch.T, n = B * S, D = c.n_embd, V = c.n_vocab;
  Result res;

  // ---- main model forward
  BlockContext<T> bc = make_block_context<T>(c, B, S);
  bc.seq_aux_alpha = seq_aux_alpha_;
  std::vector<T> x(size_t(n * D));
  ThreadPool::global().parallel_for(n, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      std::copy(embed_.v + batch.tokens[t] * D, embed_.v + (batch.tokens[t] + 1) * D, x.begin() + t * D);
  });
  std::vector<BlockCache<T>> caches(blocks_.size());
  for (size_t l = 0; l < blocks_.size(); ++l) {
    block_forward(bc, blocks_[l], x.data(), caches[l]);
    res.loss_aux += caches[l].moe.aux_loss;
  }
  std::vector<T> h(size_t(n * D)), h_rstd(static_cast<size_t>(n));
  rmsnorm_forward(x.data(), final_norm_.v, h.data(), h_rstd.data(), n, D, c.rms_eps);

  // ---- main loss and head backward
  Activations<T> dh = zeroed<T>(n * D);
  {
    Activations<T> logits(size_t(n * V));  // 16 MB, written in full: no zero-fill
    linear_forward(h.data(), n, D, head_.v, V, logits.data());
    res.loss_main = cross_entropy_forward_backward(logits.data(), batch.targets.data(), n, V,
                                                   1.0 / double(n)) / double(n);
    linear_backward(logits.data(), h.data(), n, D, head_.v, V, dh.data(), head_.g);
  }
  for (size_t l = 0; l < blocks_.size(); ++l) {
    if (!blocks_[l].moe) continue;
    res.gates.push_back(layer_prefix(int64_t(l)) + "mlp.gate");
    res.loads.push_back(caches[l].moe.loads);
  }

  // ---- MTP: forward, loss, backward into dh and the shared embedding/head
  if (!mtp_.empty() && S > 1) mtp_forward_backward(batch, mtp_lambda, h, dh, res);

  // ---- main model backward
  Activations<T> dx = zeroed<T>(n * D);
  rmsnorm_backward(dh.data(), x.data(), final_norm_.v, h_rstd.data(), n, D, dx.data(),
                   final_norm_.g);
  for (size_t l = blocks_.size(); l-- > 0;) {
    block_backward(bc, blocks_[l], dx.data(), caches[l]);
    caches[l] = BlockCache<T>{};  // free activations as soon as they are spent
  }
  if (embed_.g)  // over column slices, rows in order, as above
    ThreadPool::global().parallel_for(D, 32, [&](int64_t j0, int64_t j1) {
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = j0; j < j1; ++j) embed_.g[batch.tokens[t] * D + j] += dx[size_t(t * D + j)];
    });

  res.loss_total = res.loss_main + mtp_lambda * res.loss_mtp + res.loss_aux;
  return res;
}

template class DeepseekEngine<float>;
template class DeepseekEngine<double>;

}  // namespace whale::train
