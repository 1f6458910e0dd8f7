// DeepSeek-V2 / V2-Lite / V3 / R1 ("deepseek2"): Multi-head Latent Attention + DeepSeekMoE.
// The math follows DeepSeek's inference/model.py; see ../shared/DESIGN.md §4 and the legend
// in model/config.h. Per token:
//   x += MLA(RMSNorm(x));  x += FFN(RMSNorm(x))   (FFN = SwiGLU for the first n_dense_lead
//   layers, MoE after);    logits = lm_head(RMSNorm(x))
// MLA runs absorbed: the cache holds [c_kv ; k_rope] (c + dr floats) per token per layer,
// q̃_h = W_kb,hᵀ q_nope,h, score = scale·(q̃_h·c_kv + q_rope,h·k_rope), o_h = W_vb,h Σ p c_kv.
// The naive form (expand K and V per head) stays available as the test oracle.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "model/moe_routing.h"
#include "model/rope.h"

namespace whale {

namespace {

struct SwiGlu {
  Matrix gate, up;  // [F, D]
  Matrix down;      // [D, F]
};

struct Layer {
  std::vector<float> attn_norm;  // [D]
  Matrix wq;                     // [H*(dn+dr), D]          q_lora == 0
  Matrix wq_a;                   // [q_lora, D]
  std::vector<float> q_a_norm;   // [q_lora]
  Matrix wq_b;                   // [H*(dn+dr), q_lora]
  Matrix wkv_a;                  // [c+dr, D]
  std::vector<float> kv_a_norm;  // [c]
  // K/V up-projections, in one of two layouts:
  Matrix wk_b;   // GGUF split: [H*c, dn]  (head h: rows h*c.., W_kb,hᵀ)
  Matrix wv_b;   // GGUF split: [H*dv, c]
  Matrix wkv_b;  // HF kv_b_proj / older GGUF: [H*(dn+dv), c] (head h: dn K rows, dv V rows)
  Matrix wo;     // [D, H*dv]
  std::vector<float> ffn_norm;  // [D]
  SwiGlu dense;                 // dense layers
  // MoE layers
  Matrix router;                   // [E, D]
  std::vector<float> router_bias;  // [E] e_score_correction_bias (empty if none)
  std::vector<SwiGlu> experts;     // E x ([Fe, D], [Fe, D], [D, Fe])
  SwiGlu shared;                   // width S*Fe
  bool moe = false;
};

// Grow-only scratch buffers, reused across calls.
struct Workspace {
  std::vector<float> x, xn, q, qa, kva, qt, ctx, o, out, ffn_a, ffn_b, ffn_c, gathered, logits_tmp;
  std::vector<float> router_logits, route_w, route_scratch, cs;
  std::vector<int32_t> route_e;
  std::vector<int64_t> members, expert_start, expert_cursor;  // MoE rows (see ffn)
  std::vector<float> member_w;
  std::vector<MatmulJob> jobs;
  std::vector<Matrix> head_w;  // per-head row slices of W_kb / W_vb for a batch of head products
  std::vector<float> attn_scores, kexp, vexp, ctx2, krope, row;
  std::vector<KvBlock> blocks;  // the current sequence's cache blocks for one layer
  static float* get(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};

class Deepseek2 final : public Model {
 public:
  Deepseek2(std::unique_ptr<ModelFiles> files, const LoadOptions& opts)
      : Model(std::move(files)), naive_(opts.naive_mla), expanded_min_(opts.mla_expanded_min) {
    load();
  }

  void forward_batch(std::span<const SeqBatch> seqs) override;

 private:
  void load();
  void attention(const Layer& L, int64_t il, std::span<const SeqBatch> seqs, int64_t n);
  void ffn(const Layer& L, int64_t n);
  // y = Σ_k w_k · expert_k(xn) + shared(xn) over the n tokens of xn (routed, shared experts).
  void moe_ffn(const Layer& L, const float* xn, int64_t n, float* y);
  void swiglu_mlp(const SwiGlu& m, int64_t width, const float* x, int64_t n, float* y);

  bool naive_;
  int64_t expanded_min_;  // batches of at least this many tokens use the expanded form
  Matrix tok_embd_;              // [V, D]
  std::vector<float> out_norm_;  // [D]
  Matrix output_;                // [V, D]
  std::vector<Layer> layers_;
  std::vector<float> inv_freq_;  // [dr/2]
  float kq_scale_ = 1;
  RouterParams router_;
  Workspace ws_;
  FlatBatch fb_;
};

void Deepseek2::load() {
  const ModelConfig& c = config();
  WeightLoader w(*files_);
  const bool gguf = files_->format() == FileFormat::Gguf;
  const int64_t D = c.n_embd, H = c.n_head, dn = c.qk_nope_dim, dr = c.qk_rope_dim,
                dv = c.v_head_dim, C = c.kv_lora_rank, Fe = c.n_ff_expert;

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
    if (c.q_lora_rank > 0) {
      L.wq_a = w.matrix(name("attn_q_a.weight", "self_attn.q_a_proj.weight"), c.q_lora_rank, D);
      L.q_a_norm = w.vector(name("attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight"), c.q_lora_rank);
      L.wq_b = w.matrix(name("attn_q_b.weight", "self_attn.q_b_proj.weight"), H * (dn + dr), c.q_lora_rank);
    } else {
      L.wq = w.matrix(name("attn_q.weight", "self_attn.q_proj.weight"), H * (dn + dr), D);
    }
    L.wkv_a = w.matrix(name("attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight"), C + dr, D);
    L.kv_a_norm = w.vector(name("attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight"), C);
    if (gguf && w.has(p + "attn_k_b.weight")) {
      L.wk_b = w.matrix(p + "attn_k_b.weight", H * C, dn);
      L.wv_b = w.matrix(p + "attn_v_b.weight", H * dv, C);
    } else {
      L.wkv_b = w.matrix(name("attn_kv_b.weight", "self_attn.kv_b_proj.weight"), H * (dn + dv), C);
    }
    L.wo = w.matrix(name("attn_output.weight", "self_attn.o_proj.weight"), D, H * dv);
    L.ffn_norm = w.vector(name("ffn_norm.weight", "post_attention_layernorm.weight"), D);
    L.moe = c.is_moe_layer(il);
    if (!L.moe) {
      L.dense.gate = w.matrix(name("ffn_gate.weight", "mlp.gate_proj.weight"), c.n_ff, D);
      L.dense.up = w.matrix(name("ffn_up.weight", "mlp.up_proj.weight"), c.n_ff, D);
      L.dense.down = w.matrix(name("ffn_down.weight", "mlp.down_proj.weight"), D, c.n_ff);
      continue;
    }
    const int64_t E = c.n_expert;
    L.router = w.matrix(name("ffn_gate_inp.weight", "mlp.gate.weight"), E, D);
    const std::string bias = name("exp_probs_b.bias", "mlp.gate.e_score_correction_bias");
    if (w.has(bias)) L.router_bias = w.vector(bias, E);
    L.experts.resize(size_t(E));
    if (gguf) {
      Matrix g = w.matrix(p + "ffn_gate_exps.weight", E * Fe, D);
      Matrix u = w.matrix(p + "ffn_up_exps.weight", E * Fe, D);
      Matrix d = w.matrix(p + "ffn_down_exps.weight", E * D, Fe);
      for (int64_t e = 0; e < E; ++e)
        L.experts[size_t(e)] = {g.row_slice(e * Fe, Fe), u.row_slice(e * Fe, Fe), d.row_slice(e * D, D)};
    } else {
      for (int64_t e = 0; e < E; ++e) {
        const std::string q = fmt::format("{}mlp.experts.{}.", p, e);
        L.experts[size_t(e)] = {w.matrix(q + "gate_proj.weight", Fe, D),
                                w.matrix(q + "up_proj.weight", Fe, D),
                                w.matrix(q + "down_proj.weight", D, Fe)};
      }
    }
    if (c.n_expert_shared > 0) {
      const int64_t Fs = c.n_expert_shared * Fe;
      L.shared.gate = w.matrix(name("ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight"), Fs, D);
      L.shared.up = w.matrix(name("ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight"), Fs, D);
      L.shared.down = w.matrix(name("ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight"), D, Fs);
    }
  }
  for (auto& n : w.unused())
    if (!files_->is_mtp_tensor(n)) unused_.push_back(n);

  inv_freq_ = rope_inv_freq(c, dr);
  kq_scale_ = mla_softmax_scale(c);
  router_ = RouterParams{.scoring = c.scoring, .n_expert = c.n_expert, .top_k = c.n_expert_used,
                         .n_group = c.n_group, .topk_group = c.topk_group,
                         .norm_topk_prob = c.norm_topk_prob,
                         .routed_scaling = float(c.routed_scaling), .bias = nullptr};
}

// The sequences of the batch run as one run of n tokens through every linear layer (and the
// MoE, experts grouped over all of them); only attention looks at which sequence a token is in.
void Deepseek2::forward_batch(std::span<const SeqBatch> seqs) {
  const int64_t n = check_batch(seqs);
  flatten(seqs, fb_);
  const ModelConfig& c = config();
  const int64_t D = c.n_embd;
  float* x = Workspace::get(ws_.x, size_t(n * D));
  int64_t t = 0;
  for (const SeqBatch& s : seqs)
    for (int32_t tok : s.tokens) tok_embd_.dequantize_row(tok, x + (t++) * D);

  for (int64_t il = 0; il < c.n_layer; ++il) {
    const Layer& L = layers_[size_t(il)];
    attention(L, il, seqs, n);
    ffn(L, n);
  }
  batch_logits(seqs, fb_, x, out_norm_, output_, ws_.xn, ws_.logits_tmp);
}

void Deepseek2::attention(const Layer& L, int64_t il, std::span<const SeqBatch> seqs, int64_t n) {
  const int32_t* pos = fb_.pos.data();
  const int32_t* seq = fb_.seq.data();
  const ModelConfig& c = config();
  const int64_t D = c.n_embd, H = c.n_head, dn = c.qk_nope_dim, dr = c.qk_rope_dim,
                dv = c.v_head_dim, C = c.kv_lora_rank, dq = dn + dr;
  const float eps = float(c.rms_eps);
  float* x = ws_.x.data();
  float* xn = Workspace::get(ws_.xn, size_t(n * D));
  for (int64_t t = 0; t < n; ++t) rmsnorm(x + t * D, L.attn_norm.data(), xn + t * D, D, eps);

  // q: [n, H, dn + dr]
  // and [c_kv ; k_rope] → cache: the products of xn in one parallel region
  float* q = Workspace::get(ws_.q, size_t(n * H * dq));
  float* kva = Workspace::get(ws_.kva, size_t(n * (C + dr)));
  if (c.q_lora_rank > 0) {
    float* qa = Workspace::get(ws_.qa, size_t(n * c.q_lora_rank));
    const MatmulJob from_xn[2] = {{&L.wq_a, xn, n, D, qa, c.q_lora_rank}, {&L.wkv_a, xn, n, D, kva, C + dr}};
    matmul_batch(from_xn);
    for (int64_t t = 0; t < n; ++t)
      rmsnorm(qa + t * c.q_lora_rank, L.q_a_norm.data(), qa + t * c.q_lora_rank, c.q_lora_rank, eps);
    matmul(L.wq_b, qa, n, c.q_lora_rank, q, H * dq);
  } else {
    const MatmulJob from_xn[2] = {{&L.wq, xn, n, D, q, H * dq}, {&L.wkv_a, xn, n, D, kva, C + dr}};
    matmul_batch(from_xn);
  }
  float* cs = Workspace::get(ws_.cs, size_t(n * dr));
  for (int64_t t = 0; t < n; ++t) {
    rope_cos_sin(inv_freq_, pos[t], cs + t * dr);
    float* row = kva + t * (C + dr);  // finished in place, then stored (f32 or f16)
    rmsnorm(row, L.kv_a_norm.data(), row, C, eps);
    rope_apply(row + C, cs + t * dr, dr / 2, c.rope_style);
    seqs[size_t(seq[t])].kv.store_k(il, pos[t], row);
    for (int64_t h = 0; h < H; ++h) rope_apply(q + (t * H + h) * dq + dn, cs + t * dr, dr / 2, c.rope_style);
  }

  float* ctx_o = Workspace::get(ws_.o, size_t(n * H * dv));
  const bool split = !L.wk_b.empty();
  // Per head h: W_kb,h as stored. split: [c, dn] (= W_kbᵀ); kv_b: rows h*(dn+dv).. [dn, c].
  auto kb = [&](int64_t h) { return split ? L.wk_b.row_slice(h * C, C) : L.wkv_b.row_slice(h * (dn + dv), dn); };
  auto vb = [&](int64_t h) { return split ? L.wv_b.row_slice(h * dv, dv) : L.wkv_b.row_slice(h * (dn + dv) + dn, dv); };
  // One product per head (job(h) with the head's matrix weight(h)), all in one matmul_batch.
  auto head_jobs = [&](auto job, auto weight) {
    ws_.head_w.resize(size_t(H));
    ws_.jobs.clear();
    for (int64_t h = 0; h < H; ++h) {
      ws_.head_w[size_t(h)] = weight(h);
      MatmulJob j = job(h);
      j.W = &ws_.head_w[size_t(h)];
      ws_.jobs.push_back(j);
    }
    matmul_batch(ws_.jobs);
  };

  // Which form each sequence uses: absorbed over the latent cache (decode, short chunks), the
  // expanded K/V form for long prefill chunks (>= expanded_min_ tokens), or the naive oracle.
  auto expanded = [&](size_t si) { return !naive_ && fb_.offset[si + 1] - fb_.offset[si] >= expanded_min_; };
  bool any_absorbed = false;
  for (size_t si = 0; si < seqs.size(); ++si) any_absorbed |= !naive_ && !expanded(si);

  // Absorbed queries for the whole batch at once: per (token, head) [q̃ ; q_rope] with
  // q̃ = W_kb,hᵀ q_nope,h: [n, H, c + dr]; they attend to the cached rows [c_kv ; k_rope] as
  // they are, and the context stays in latent space until W_vb.
  const int64_t dk = C + dr;
  float* qt = nullptr;
  float* ctx = nullptr;
  if (any_absorbed) {
    qt = Workspace::get(ws_.qt, size_t(n * H * dk));
    if (split) {  // all heads in one parallel region
      head_jobs([&](int64_t h) { return MatmulJob{nullptr, q + h * dq, n, H * dq, qt + h * dk, H * dk}; }, kb);
    } else {
      for (int64_t h = 0; h < H; ++h) matmul_transposed(kb(h), q + h * dq, n, H * dq, qt + h * dk, H * dk);
    }
    for (int64_t th = 0; th < n * H; ++th) std::copy_n(q + th * dq + dn, dr, qt + th * dk + C);
    ctx = Workspace::get(ws_.ctx2, size_t(n * H * C));
  }

  // Attention itself looks at one sequence at a time: its own cache, walked as contiguous
  // blocks of rows (one block for a flat cache, one per page for the scheduler's pool).
  for (size_t si = 0; si < seqs.size(); ++si) {
    const KvBlocks& kv = seqs[si].kv;
    const int64_t t0 = fb_.offset[si], t1 = fb_.offset[si + 1], ns = t1 - t0;
    if (ns == 0) continue;
    int64_t Ts = 0;  // cache rows this sequence's tokens may see
    for (int64_t t = t0; t < t1; ++t) Ts = std::max<int64_t>(Ts, pos[t] + 1);

    if (!naive_ && !expanded(si)) {
      std::vector<KvBlock>& blocks = ws_.blocks;
      blocks.clear();
      for (int64_t bi = 0, nb = kv.n_blocks(Ts); bi < nb; ++bi) {
        const void* rows = kv.k_rows(il, bi);
        blocks.push_back({.k = rows, .v = rows, .rows = kv.rows_in(bi, Ts), .k_stride = kv.k_width,
                          .v_stride = kv.k_width, .pos0 = bi * kv.block_tokens, .type = kv.type});
      }
      mla_attention(qt + t0 * H * dk, ns, H, C, dr, pos + t0, kq_scale_, blocks, ctx + t0 * H * C);
      continue;
    }

    // Expanded and naive: k_h(u) = [W_kb,h c_kv(u) ; k_rope(u)], v_h(u) = W_vb,h c_kv(u), u < Ts.
    float* latent = Workspace::get(ws_.ctx, size_t(Ts * C));
    float* krope = Workspace::get(ws_.krope, size_t(Ts * dr));
    float* row = Workspace::get(ws_.row, size_t(C + dr));
    for (int64_t u = 0; u < Ts; ++u) {
      kv.load_k(il, u, row);
      std::copy(row, row + C, latent + u * C);
      std::copy(row + C, row + C + dr, krope + u * dr);
    }
    float* kexp = Workspace::get(ws_.kexp, size_t(Ts * H * dq));  // [Ts, H, dn + dr]
    float* vexp = Workspace::get(ws_.vexp, size_t(Ts * H * dv));  // [Ts, H, dv]
    for (int64_t h = 0; h < H; ++h) {
      if (split) matmul_transposed(kb(h), latent, Ts, C, kexp + h * dq, H * dq);
      else matmul(kb(h), latent, Ts, C, kexp + h * dq, H * dq);
      matmul(vb(h), latent, Ts, C, vexp + h * dv, H * dv);
    }
    for (int64_t u = 0; u < Ts; ++u)
      for (int64_t h = 0; h < H; ++h) std::copy_n(krope + u * dr, dr, kexp + (u * H + h) * dq + dn);

    if (!naive_) {
      // Long prefill: expanding K/V once per cached row (2·T·H·c·(dn+dv) FLOP) and attending at
      // width dn+dr / dv is cheaper than attending n queries at width 2c+dr (bench/RESULTS.md).
      const KvBlock rows{.k = kexp, .v = vexp, .rows = Ts, .k_stride = H * dq, .v_stride = H * dv, .pos0 = 0};
      const AttnParams p{.n_tok = ns, .n_head = H, .n_kv_head = H, .dk = dq, .dv = dv,
                         .k_head_offset = dq, .v_head_offset = dv,
                         .q = q + t0 * H * dq, .q_tok_stride = H * dq, .q_head_stride = dq, .pos = pos + t0,
                         .scale = kq_scale_, .out = ctx_o + t0 * H * dv, .o_tok_stride = H * dv, .o_head_stride = dv};
      whale::attention(p, std::span(&rows, 1));
      continue;
    }
    // The naive oracle: plain scores, softmax, weighted sum.
    float* scores = Workspace::get(ws_.attn_scores, size_t(Ts));
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const float* qh = q + (t * H + h) * dq;
        const int64_t len = pos[t] + 1;
        for (int64_t u = 0; u < len; ++u)
          scores[u] = kq_scale_ * dot_f32(qh, kexp + (u * H + h) * dq, dq);
        softmax_inplace(scores, len);
        float* o = ctx_o + (t * H + h) * dv;
        std::fill(o, o + dv, 0.0f);
        for (int64_t u = 0; u < len; ++u)
          for (int64_t j = 0; j < dv; ++j) o[j] += scores[u] * vexp[(u * H + h) * dv + j];
      }
  }
  // Absorbed sequences: o_h = W_vb,h · ctx_h, over the whole batch in one product when every
  // sequence is absorbed (decode steps), else sequence by sequence.
  if (any_absorbed) {
    bool all_absorbed = true;
    for (size_t si = 0; si < seqs.size(); ++si) all_absorbed &= !expanded(si);
    for (size_t si = 0; si < seqs.size(); ++si) {
      const int64_t t0 = all_absorbed ? 0 : fb_.offset[si];
      const int64_t ns = all_absorbed ? n : fb_.offset[si + 1] - t0;
      if (ns > 0 && (all_absorbed || !expanded(si)))
        head_jobs([&](int64_t h) {
          return MatmulJob{nullptr, ctx + t0 * H * C + h * C, ns, H * C, ctx_o + t0 * H * dv + h * dv, H * dv};
        }, vb);
      if (all_absorbed) break;
    }
  }

  float* out = Workspace::get(ws_.out, size_t(n * D));
  matmul(L.wo, ctx_o, n, H * dv, out, D);
  for (int64_t i = 0; i < n * D; ++i) x[i] += out[i];
}

void Deepseek2::swiglu_mlp(const SwiGlu& m, int64_t width, const float* xin, int64_t n, float* y) {
  const int64_t D = config().n_embd;
  float* a = Workspace::get(ws_.ffn_a, size_t(n * width));
  float* b = Workspace::get(ws_.ffn_b, size_t(n * width));
  matmul2(m.gate, a, width, m.up, b, width, xin, n, D);  // one pass over the activations
  swiglu(a, b, a, n * width);
  matmul(m.down, a, n, width, y, D);
}

void Deepseek2::ffn(const Layer& L, int64_t n) {
  const ModelConfig& c = config();
  const int64_t D = c.n_embd;
  float* x = ws_.x.data();
  float* xn = Workspace::get(ws_.xn, size_t(n * D));
  for (int64_t t = 0; t < n; ++t) rmsnorm(x + t * D, L.ffn_norm.data(), xn + t * D, D, float(c.rms_eps));
  float* y = Workspace::get(ws_.out, size_t(n * D));
  if (L.moe) moe_ffn(L, xn, n, y);
  else swiglu_mlp(L.dense, c.n_ff, xn, n, y);
  for (int64_t i = 0; i < n * D; ++i) x[i] += y[i];
}

void Deepseek2::moe_ffn(const Layer& L, const float* xn, int64_t n, float* y) {
  const ModelConfig& c = config();
  const int64_t D = c.n_embd;
  // Route every token, then run every expert once over the tokens that chose it. The (token,
  // expert) rows are grouped by expert and the experts taken in runs of about kMoeRows rows:
  // each run's gate/up products (the first run's with the shared experts') share one
  // parallel region and its down products another, so a decoded token pays two regions per
  // layer rather than two per active expert, while a long prompt's runs keep their
  // activations in cache (one region over all 3072 rows of a V2-Lite prompt of 512 was 10%
  // slower than a region per expert).
  const int64_t E = c.n_expert, K = c.n_expert_used, Fe = c.n_ff_expert, NK = n * K;
  const int64_t Fs = c.n_expert_shared * Fe;
  float* rl = Workspace::get(ws_.router_logits, size_t(n * E));
  matmul(L.router, xn, n, D, rl, E);
  std::vector<int32_t>& re = ws_.route_e;
  re.resize(size_t(NK));
  float* rw = Workspace::get(ws_.route_w, size_t(NK));
  float* scratch = Workspace::get(ws_.route_scratch, size_t(3 * E));
  RouterParams rp = router_;
  rp.bias = L.router_bias.empty() ? nullptr : L.router_bias.data();
  for (int64_t t = 0; t < n; ++t) route_token(rp, rl + t * E, &re[size_t(t * K)], rw + t * K, scratch);

  // Counting sort of the (token, slot) pairs by expert: expert e owns rows [start[e],
  // start[e+1]), in token order; members / member_w give each row's token and weight.
  std::vector<int64_t>& start = ws_.expert_start;
  start.assign(size_t(E + 1), 0);
  for (int64_t i = 0; i < NK; ++i) ++start[size_t(re[size_t(i)] + 1)];
  for (int64_t e = 0; e < E; ++e) start[size_t(e + 1)] += start[size_t(e)];
  std::vector<int64_t>& cursor = ws_.expert_cursor;
  cursor.assign(start.begin(), start.end() - 1);
  std::vector<int64_t>& members = ws_.members;
  members.resize(size_t(NK));
  float* member_w = Workspace::get(ws_.member_w, size_t(NK));
  for (int64_t i = 0; i < NK; ++i) {
    const int64_t r = cursor[size_t(re[size_t(i)])]++;
    members[size_t(r)] = i / K;
    member_w[r] = rw[i];
  }

  ThreadPool& pool = ThreadPool::global();
  constexpr int64_t kMoeRows = 256;
  constexpr int64_t kMoeSerialFloats = 32768;
  const int64_t max_rows = std::min(NK, kMoeRows + n);  // a run ends at the first expert past kMoeRows
  float* gathered = Workspace::get(ws_.gathered, size_t(max_rows * D));
  float* a = Workspace::get(ws_.ffn_a, size_t(max_rows * Fe + n * Fs));  // gate, then SwiGLU
  float* b = Workspace::get(ws_.ffn_b, size_t(max_rows * Fe + n * Fs));  // up
  float* eout = Workspace::get(ws_.ffn_c, size_t(max_rows * D + n * D));
  float* a_sh = a + max_rows * Fe, *b_sh = b + max_rows * Fe, *sh_out = eout + max_rows * D;
  std::fill(y, y + n * D, 0.0f);
  std::vector<MatmulJob>& jobs = ws_.jobs;
  for (int64_t e0 = 0; e0 < E;) {
    int64_t e1 = e0 + 1;
    while (e1 < E && start[size_t(e1)] - start[size_t(e0)] < kMoeRows) ++e1;
    const int64_t base = start[size_t(e0)], rows = start[size_t(e1)] - base;
    const bool with_shared = e0 == 0 && Fs > 0;
    pool.parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* src = xn + members[size_t(base + r)] * D;
        std::copy(src, src + D, gathered + r * D);
      }
    });
    jobs.clear();
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t s0 = start[size_t(e)] - base, m = start[size_t(e + 1)] - start[size_t(e)];
      if (m == 0) continue;
      jobs.push_back({&L.experts[size_t(e)].gate, gathered + s0 * D, m, D, a + s0 * Fe, Fe});
      jobs.push_back({&L.experts[size_t(e)].up, gathered + s0 * D, m, D, b + s0 * Fe, Fe});
    }
    if (with_shared) {
      jobs.push_back({&L.shared.gate, xn, n, D, a_sh, Fs});
      jobs.push_back({&L.shared.up, xn, n, D, b_sh, Fs});
    }
    matmul_batch(jobs);
    // SwiGLU and the weighted sum below stay on the calling thread for a decode step's few
    // rows (a region costs more than they do) and are shared out for a prompt's.
    auto swiglu_rows = [&](float* g, const float* u, int64_t count) {
      const int64_t chunks = (count + 4095) / 4096;
      pool.parallel_for(chunks, count < kMoeSerialFloats ? chunks : 1, [&](int64_t c0, int64_t c1) {
        const int64_t i0 = c0 * 4096, i1 = std::min(count, c1 * 4096);
        swiglu(g + i0, u + i0, g + i0, i1 - i0);
      });
    };
    swiglu_rows(a, b, rows * Fe);
    if (with_shared) swiglu_rows(a_sh, b_sh, n * Fs);
    jobs.clear();
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t s0 = start[size_t(e)] - base, m = start[size_t(e + 1)] - start[size_t(e)];
      if (m > 0) jobs.push_back({&L.experts[size_t(e)].down, a + s0 * Fe, m, Fe, eout + s0 * D, D});
    }
    if (with_shared) jobs.push_back({&L.shared.down, a_sh, n, Fs, sh_out, D});
    matmul_batch(jobs);
    // y[token] += w · expert output, rows in order (so each token adds its experts in
    // ascending order, as it would alone); threads split the columns, not the rows.
    pool.parallel_for(D, rows * D < kMoeSerialFloats ? D : 256, [&](int64_t j0, int64_t j1) {
      for (int64_t r = 0; r < rows; ++r) {
        float* yt = y + members[size_t(base + r)] * D;
        const float w = member_w[base + r], *o = eout + r * D;
        for (int64_t j = j0; j < j1; ++j) yt[j] += w * o[j];
      }
    });
    e0 = e1;
  }
  if (Fs > 0)
    for (int64_t i = 0; i < n * D; ++i) y[i] += sh_out[i];
}

}  // namespace

std::unique_ptr<Model> make_deepseek2(std::unique_ptr<ModelFiles> files, const LoadOptions& opts) {
  return std::make_unique<Deepseek2>(std::move(files), opts);
}

}  // namespace whale
