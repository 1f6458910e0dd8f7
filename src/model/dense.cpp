// Dense decoder-only transformers of the R1-Distill family: qwen2 (q/k/v biases) and llama
// (llama3 rope scaling). Hugging Face semantics: GQA, RMSNorm, RoPE, SwiGLU, per token
//   x += Wo·Attn(RoPE(Wq xn + bq), RoPE(Wk xn + bk), Wv xn + bv);  x += W2(silu(W1 xn) ⊙ W3 xn)
// RoPE pairing: HF checkpoints rotate halves (NeoX); llama GGUFs have Q/K rows permuted by the
// converter so that pairs are adjacent (ModelConfig::rope_style says which).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "model/rope.h"

namespace whale {

namespace {

struct Layer {
  std::vector<float> attn_norm;     // [D]
  Matrix wq, wk, wv;                // [H*dh, D], [Hkv*dh, D], [Hkv*dh, D]
  std::vector<float> bq, bk, bv;    // biases (qwen2) or empty
  Matrix wo;                        // [D, H*dh]
  std::vector<float> ffn_norm;      // [D]
  Matrix gate, up, down;            // [F, D], [F, D], [D, F]
};

std::vector<float>& grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v;
}

class Dense final : public Model {
 public:
  Dense(std::unique_ptr<ModelFiles> files, const LoadOptions&) : Model(std::move(files)) { load(); }
  void forward_batch(std::span<const SeqBatch> seqs) override;

 private:
  void load();
  Matrix tok_embd_, output_;
  std::vector<float> out_norm_;
  std::vector<Layer> layers_;
  std::vector<float> inv_freq_;
  // scratch
  std::vector<float> x_, xn_, q_, k_, v_, o_, a_, b_, cs_, logits_tmp_;
  std::vector<KvBlock> blocks_;  // the current sequence's cache blocks for one layer
  FlatBatch fb_;
};

void Dense::load() {
  const ModelConfig& c = config();
  WeightLoader w(*files_);
  const bool gguf = files_->format() == FileFormat::Gguf;
  const int64_t D = c.n_embd, qd = c.n_head * c.head_dim, kvd = c.n_head_kv * c.head_dim;
  tok_embd_ = w.matrix(gguf ? "token_embd.weight" : "model.embed_tokens.weight", c.n_vocab, D);
  out_norm_ = w.vector(gguf ? "output_norm.weight" : "model.norm.weight", D);
  const std::string out_name = gguf ? "output.weight" : "lm_head.weight";
  output_ = (c.tie_embeddings || !w.has(out_name)) ? tok_embd_ : w.matrix(out_name, c.n_vocab, D);

  layers_.resize(size_t(c.n_layer));
  for (int64_t il = 0; il < c.n_layer; ++il) {
    Layer& L = layers_[size_t(il)];
    const std::string p = gguf ? fmt::format("blk.{}.", il) : fmt::format("model.layers.{}.", il);
    auto name = [&](const char* g, const char* hf) { return p + (gguf ? g : hf); };
    L.attn_norm = w.vector(name("attn_norm.weight", "input_layernorm.weight"), D);
    L.wq = w.matrix(name("attn_q.weight", "self_attn.q_proj.weight"), qd, D);
    L.wk = w.matrix(name("attn_k.weight", "self_attn.k_proj.weight"), kvd, D);
    L.wv = w.matrix(name("attn_v.weight", "self_attn.v_proj.weight"), kvd, D);
    if (c.attn_bias) {
      L.bq = w.vector(name("attn_q.bias", "self_attn.q_proj.bias"), qd);
      L.bk = w.vector(name("attn_k.bias", "self_attn.k_proj.bias"), kvd);
      L.bv = w.vector(name("attn_v.bias", "self_attn.v_proj.bias"), kvd);
    }
    L.wo = w.matrix(name("attn_output.weight", "self_attn.o_proj.weight"), D, qd);
    L.ffn_norm = w.vector(name("ffn_norm.weight", "post_attention_layernorm.weight"), D);
    L.gate = w.matrix(name("ffn_gate.weight", "mlp.gate_proj.weight"), c.n_ff, D);
    L.up = w.matrix(name("ffn_up.weight", "mlp.up_proj.weight"), c.n_ff, D);
    L.down = w.matrix(name("ffn_down.weight", "mlp.down_proj.weight"), D, c.n_ff);
  }
  // llama3 scaling in a GGUF: per-frequency divisors in rope_freqs.weight.
  if (gguf && w.has("rope_freqs.weight")) {
    std::vector<float> div = w.vector("rope_freqs.weight", c.head_dim / 2);
    inv_freq_ = rope_inv_freq(c, c.head_dim, &div);
  } else {
    inv_freq_ = rope_inv_freq(c, c.head_dim);
  }
  unused_ = w.unused();
}

// The sequences of the batch run as one run of n tokens through every linear layer; only
// attention looks at which sequence a token is in (its own cache, walked as blocks of rows).
void Dense::forward_batch(std::span<const SeqBatch> seqs) {
  const int64_t n = check_batch(seqs);
  flatten(seqs, fb_);
  const int32_t* pos = fb_.pos.data();
  const int32_t* seq = fb_.seq.data();
  const ModelConfig& c = config();
  const int64_t D = c.n_embd, H = c.n_head, Hkv = c.n_head_kv,
                dh = c.head_dim, qd = H * dh, kvd = Hkv * dh, F = c.n_ff;
  const float eps = float(c.rms_eps);
  const float scale = float(1.0 / std::sqrt(double(dh)));
  float* x = grow(x_, size_t(n * D)).data();
  float* xn = grow(xn_, size_t(n * D)).data();
  float* q = grow(q_, size_t(n * qd)).data();
  float* k = grow(k_, size_t(n * kvd)).data();
  float* v = grow(v_, size_t(n * kvd)).data();
  float* o = grow(o_, size_t(n * std::max(qd, D))).data();
  float* a = grow(a_, size_t(n * std::max(F, D))).data();
  float* b = grow(b_, size_t(n * F)).data();
  float* cs = grow(cs_, size_t(n * dh)).data();
  for (int64_t t = 0; t < n; ++t) rope_cos_sin(inv_freq_, pos[t], cs + t * dh);
  int64_t ti = 0;
  for (const SeqBatch& s : seqs)
    for (int32_t tok : s.tokens) tok_embd_.dequantize_row(tok, x + (ti++) * D);

  for (int64_t il = 0; il < c.n_layer; ++il) {
    const Layer& L = layers_[size_t(il)];
    for (int64_t t = 0; t < n; ++t) rmsnorm(x + t * D, L.attn_norm.data(), xn + t * D, D, eps);
    const MatmulJob qkv[3] = {{&L.wq, xn, n, D, q, qd}, {&L.wk, xn, n, D, k, kvd}, {&L.wv, xn, n, D, v, kvd}};
    matmul_batch(qkv);  // one parallel region, the activations quantized once
    for (int64_t t = 0; t < n; ++t) {
      if (c.attn_bias) {
        for (int64_t i = 0; i < qd; ++i) q[t * qd + i] += L.bq[i];
        for (int64_t i = 0; i < kvd; ++i) k[t * kvd + i] += L.bk[i];
        for (int64_t i = 0; i < kvd; ++i) v[t * kvd + i] += L.bv[i];
      }
      for (int64_t h = 0; h < H; ++h) rope_apply(q + t * qd + h * dh, cs + t * dh, dh / 2, c.rope_style);
      for (int64_t h = 0; h < Hkv; ++h) rope_apply(k + t * kvd + h * dh, cs + t * dh, dh / 2, c.rope_style);
      const KvBlocks& kv = seqs[size_t(seq[t])].kv;
      kv.store_k(il, pos[t], k + t * kvd);
      kv.store_v(il, pos[t], v + t * kvd);
    }
    // Attention per sequence, over its own cache as contiguous blocks of rows (one block for a
    // flat cache, one per page for the scheduler's pool).
    for (size_t si = 0; si < seqs.size(); ++si) {
      const KvBlocks& kv = seqs[si].kv;
      const int64_t t0 = fb_.offset[si], ns = fb_.offset[si + 1] - t0;
      if (ns == 0) continue;
      int64_t Ts = 0;
      for (int64_t t = t0; t < t0 + ns; ++t) Ts = std::max<int64_t>(Ts, pos[t] + 1);
      blocks_.clear();
      for (int64_t bi = 0, nb = kv.n_blocks(Ts); bi < nb; ++bi)
        blocks_.push_back({.k = kv.k_rows(il, bi), .v = kv.v_rows(il, bi), .rows = kv.rows_in(bi, Ts),
                           .k_stride = kvd, .v_stride = kvd, .pos0 = bi * kv.block_tokens, .type = kv.type});
      gqa_attention(q + t0 * qd, ns, H, Hkv, dh, pos + t0, scale, blocks_, o + t0 * qd);
    }
    matmul(L.wo, o, n, qd, a, D);
    for (int64_t i = 0; i < n * D; ++i) x[i] += a[i];

    for (int64_t t = 0; t < n; ++t) rmsnorm(x + t * D, L.ffn_norm.data(), xn + t * D, D, eps);
    matmul2(L.gate, a, F, L.up, b, F, xn, n, D);  // one pass over the activations
    swiglu(a, b, a, n * F);
    matmul(L.down, a, n, F, o, D);
    for (int64_t i = 0; i < n * D; ++i) x[i] += o[i];
  }
  batch_logits(seqs, fb_, x, out_norm_, output_, xn_, logits_tmp_);
}

}  // namespace

std::unique_ptr<Model> make_dense(std::unique_ptr<ModelFiles> files, const LoadOptions& opts) {
  return std::make_unique<Dense>(std::move(files), opts);
}

}  // namespace whale
