// Every backward of the training engine against central finite differences in double
// precision on tiny random shapes: the primitives (gemm, linear, rmsnorm, rope, softmax,
// swiglu, cross-entropy), the MLA block (q_lora, YaRN), the MoE block (sigmoid + correction
// bias + groups + normalisation + scaling; softmax), and whole tiny models with MTP (untied,
// tied, direct W_q). Each loss is L = Σ r ⊙ output for a fixed random r, so dL/doutput = r.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "train/block_train.h"
#include "train/deepseek_train.h"
#include "train/ops_backward.h"
#include "train/vec_math.h"

namespace whale::train {
namespace {

using Vec = std::vector<double>;

Vec random_vec(size_t n, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> d(0.0, scale);
  Vec v(n);
  for (double& x : v) x = d(rng);
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Compares analytic[i] with (f(x + h e_i) - f(x - h e_i)) / 2h for every i (or `stride`-th).
void expect_fd(const std::string& label, Vec& x, const Vec& analytic,
               const std::function<double()>& f, size_t stride = 1) {
  ASSERT_EQ(x.size(), analytic.size()) << label;
  const double h = 1e-5;
  double worst = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = f();
    x[i] = keep - h;
    const double down = f();
    x[i] = keep;
    const double numeric = (up - down) / (2 * h);
    const double err = std::fabs(numeric - analytic[i]);
    worst = std::max(worst, err / (1.0 + std::fabs(numeric)));
    EXPECT_NEAR(analytic[i], numeric, 1e-7 + 1e-6 * std::fabs(numeric)) << label << "[" << i << "]";
  }
  EXPECT_GT(x.size(), 0u);
  (void)worst;
}

TEST(TrainOps, GemmMatchesNaiveForAllStridesAndEdges) {
  std::mt19937_64 rng(1);
  for (auto [M, N, K] : {std::tuple{1, 1, 1}, {3, 17, 5}, {70, 130, 300}, {65, 129, 257}, {4, 16, 0}}) {
    for (bool transposed_a : {false, true}) {
      Vec A = random_vec(size_t(M * K), rng), B = random_vec(size_t(K * N), rng);
      Vec C = random_vec(size_t(M * N), rng), C0 = C;
      const int64_t sa_i = transposed_a ? 1 : K, sa_k = transposed_a ? M : 1;
      gemm<double>(M, N, K, A.data(), sa_i, sa_k, B.data(), N, C.data(), N, true);
      std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), Cf(size_t(M * N));
      gemm<float>(M, N, K, Af.data(), sa_i, sa_k, Bf.data(), N, Cf.data(), N, false);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += A[size_t(i * sa_i + k * sa_k)] * B[size_t(k * N + j)];
          ASSERT_NEAR(C[size_t(i * N + j)], C0[size_t(i * N + j)] + s, 1e-10);
          ASSERT_NEAR(Cf[size_t(i * N + j)], s, 1e-4 * (1 + std::sqrt(double(K))));
        }
    }
  }
}

TEST(TrainOps, LinearBackward) {
  std::mt19937_64 rng(2);
  const int64_t n = 3, in = 5, out = 4;
  Vec X = random_vec(n * in, rng), W = random_vec(out * in, rng), r = random_vec(n * out, rng);
  auto f = [&] {
    Vec Y(n * out);
    linear_forward(X.data(), n, in, W.data(), out, Y.data());
    return dot(Y, r);
  };
  Vec dX(X.size(), 0.0), dW(W.size(), 0.0);
  linear_backward(r.data(), X.data(), n, in, W.data(), out, dX.data(), dW.data());
  expect_fd("linear dX", X, dX, f);
  expect_fd("linear dW", W, dW, f);
}

// The parallel gemm path (packed Wᵀ in the forward, in-place operands in the backward, edge
// panels of fewer than 6 rows / 16 columns) against naive sums, in float and double.
TEST(TrainOps, LinearMatchesNaiveOnParallelShapes) {
  std::mt19937_64 rng(3);
  for (auto [n, in, out] : {std::tuple{70, 300, 130}, {65, 257, 129}, {256, 128, 16}}) {
    const Vec X = random_vec(size_t(n * in), rng), W = random_vec(size_t(out * in), rng);
    const Vec dY = random_vec(size_t(n * out), rng);
    Vec Y(size_t(n * out)), dX(size_t(n * in), 0.0), dW(size_t(out * in), 0.0);
    linear_forward(X.data(), n, in, W.data(), out, Y.data());
    linear_backward(dY.data(), X.data(), n, in, W.data(), out, dX.data(), dW.data());
    auto f32 = [](const Vec& v) { return std::vector<float>(v.begin(), v.end()); };
    std::vector<float> Xf = f32(X), Wf = f32(W), dYf = f32(dY), Yf(Y.size()), dXf(dX.size(), 0.f),
                       dWf(dW.size(), 0.f);
    linear_forward(Xf.data(), n, in, Wf.data(), out, Yf.data());
    linear_backward(dYf.data(), Xf.data(), n, in, Wf.data(), out, dXf.data(), dWf.data());
    auto check = [&](const char* what, int64_t rows, int64_t cols, int64_t K, const Vec& got,
                     const std::vector<float>& gotf, auto&& term) {
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += term(i, j, k);
          ASSERT_NEAR(got[size_t(i * cols + j)], s, 1e-10) << what << " " << i << "," << j;
          ASSERT_NEAR(gotf[size_t(i * cols + j)], s, 1e-4 * (1 + std::sqrt(double(K)))) << what;
        }
    };
    check("Y", n, out, in, Y, Yf, [&](int64_t t, int64_t o, int64_t k) { return X[size_t(t * in + k)] * W[size_t(o * in + k)]; });
    check("dX", n, in, out, dX, dXf, [&](int64_t t, int64_t i, int64_t o) { return dY[size_t(t * out + o)] * W[size_t(o * in + i)]; });
    check("dW", out, in, n, dW, dWf, [&](int64_t o, int64_t i, int64_t t) { return dY[size_t(t * out + o)] * X[size_t(t * in + i)]; });
  }
}

TEST(TrainOps, RmsnormBackward) {
  std::mt19937_64 rng(3);
  const int64_t n = 3, dim = 7;
  Vec x = random_vec(n * dim, rng), w = random_vec(dim, rng), r = random_vec(n * dim, rng);
  auto f = [&] {
    Vec y(n * dim), rs(n);
    rmsnorm_forward(x.data(), w.data(), y.data(), rs.data(), n, dim, 1e-6);
    return dot(y, r);
  };
  Vec y(n * dim), rs(n), dx(x.size(), 0.0), dw(w.size(), 0.0);
  rmsnorm_forward(x.data(), w.data(), y.data(), rs.data(), n, dim, 1e-6);
  rmsnorm_backward(r.data(), x.data(), w.data(), rs.data(), n, dim, dx.data(), dw.data());
  expect_fd("rmsnorm dx", x, dx, f);
  expect_fd("rmsnorm dw", w, dw, f);
}

TEST(TrainOps, RopeBackwardBothStylesWithYarnTables) {
  ModelConfig cfg;
  cfg.qk_rope_dim = 8;
  cfg.rope_scaling.type = RopeScalingType::Yarn;
  cfg.rope_scaling.factor = 40;
  cfg.rope_scaling.original_ctx = 4096;
  const BlockContext<double> bc = make_block_context<double>(cfg, 1, 6);
  std::mt19937_64 rng(4);
  for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::Neox}) {
    Vec x = random_vec(8, rng), r = random_vec(8, rng);
    const double* cs = bc.rope_cs.data() + 5 * 8;  // position 5
    auto f = [&] {
      Vec y = x;
      rope_forward(y.data(), cs, 4, style);
      return dot(y, r);
    };
    Vec dx = r;
    rope_backward(dx.data(), cs, 4, style);
    expect_fd("rope dx", x, dx, f);
  }
}

TEST(TrainOps, SoftmaxSwigluCrossEntropyBackward) {
  std::mt19937_64 rng(5);
  Vec x = random_vec(6, rng), r = random_vec(6, rng);
  auto fs = [&] {
    Vec p = x;
    softmax_forward(p.data(), 6);
    return dot(p, r);
  };
  Vec p = x, dx(6, 0.0);
  softmax_forward(p.data(), 6);
  softmax_backward(p.data(), r.data(), dx.data(), 6);
  expect_fd("softmax dx", x, dx, fs);

  Vec a = random_vec(9, rng, 2.0), b = random_vec(9, rng), rh = random_vec(9, rng);
  auto fw = [&] {
    Vec h(9);
    swiglu_forward(a.data(), b.data(), h.data(), 9);
    return dot(h, rh);
  };
  Vec da(9, 0.0), db(9, 0.0);
  swiglu_backward(rh.data(), a.data(), b.data(), da.data(), db.data(), 9);
  expect_fd("swiglu da", a, da, fw);
  expect_fd("swiglu db", b, db, fw);

  const int64_t n = 3, V = 7;
  const std::vector<int32_t> labels = {2, 0, 6};
  Vec z = random_vec(n * V, rng, 3.0);
  auto fc = [&] {
    Vec tmp = z;
    return 0.37 * cross_entropy_forward_backward(tmp.data(), labels.data(), n, V, 0.37);
  };
  Vec g = z;
  cross_entropy_forward_backward(g.data(), labels.data(), n, V, 0.37);
  expect_fd("cross-entropy dlogits", z, g, fc);
}

// A tiny deepseek2 configuration: 2 main layers (1 dense, 1 MoE) + MTP, YaRN, q_lora.
ModelConfig tiny_config() {
  ModelConfig c;
  c.arch = Arch::Deepseek2;
  c.rope_style = RopeStyle::Adjacent;
  c.n_vocab = 11, c.n_embd = 8, c.n_layer = 2, c.n_ff = 12, c.n_head = 2;
  c.q_lora_rank = 6, c.kv_lora_rank = 4, c.qk_nope_dim = 4, c.qk_rope_dim = 4, c.v_head_dim = 3;
  c.n_dense_lead = 1, c.n_expert = 4, c.n_expert_used = 2, c.n_expert_shared = 1, c.n_ff_expert = 5;
  c.n_group = 2, c.topk_group = 1, c.scoring = ScoringFunc::Sigmoid, c.norm_topk_prob = true;
  c.routed_scaling = 2.5, c.n_mtp_layers = 1;
  c.rope_scaling.type = RopeScalingType::Yarn;
  c.rope_scaling.factor = 40, c.rope_scaling.original_ctx = 4096, c.rope_scaling.mscale_all_dim = 1;
  return c;
}

// Double-precision copies of every tensor of a configuration, with their gradients.
struct DoubleParams {
  std::vector<TensorRequest> specs;
  std::vector<Vec> value, grad;
  DoubleParams(const ModelConfig& c, uint64_t seed) : specs(deepseek_tensor_requests(c, true)) {
    std::mt19937_64 rng(seed);
    for (const TensorRequest& r : specs) {
      size_t numel = 1;
      for (int64_t d : r.shape) numel *= size_t(d);
      Vec v = random_vec(numel, rng, r.shape.size() == 1 ? 0.3 : 0.5);
      if (r.shape.size() == 1 && r.trainable)
        for (double& x : v) x += 1.0;  // norm weights near 1
      value.push_back(v);
      grad.emplace_back(numel, 0.0);
    }
  }
  Binder<double> binder() {
    return [this](const TensorRequest& r) -> Slot<double> {
      for (size_t i = 0; i < specs.size(); ++i)
        if (specs[i].name == r.name) return {value[i].data(), r.trainable ? grad[i].data() : nullptr};
      return {};
    };
  }
};

Batch tiny_batch(const ModelConfig& c, int64_t B, int64_t T, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Batch b{B, T, {}, {}};
  for (int64_t i = 0; i < B * T; ++i) b.tokens.push_back(int32_t(rng() % uint64_t(c.n_vocab)));
  for (int64_t i = 0; i < B * T; ++i)
    b.targets.push_back((i + 1) % T ? b.tokens[size_t(i + 1)] : int32_t(rng() % uint64_t(c.n_vocab)));
  return b;
}

// Block weights bound from DoubleParams by layer, via a one-layer engine's tensor names.
template <typename F>
void check_whole_model(const ModelConfig& c, uint64_t seed, F&& on_result, double seq_aux_alpha = 0) {
  DoubleParams P(c, seed);
  const Batch batch = tiny_batch(c, 2, 5, seed + 1);
  const double lambda = 0.3;
  DeepseekEngine<double> engine(c, P.binder());
  engine.set_seq_aux_alpha(seq_aux_alpha);
  const auto res = engine.forward_backward(batch, lambda);
  on_result(res);
  const std::vector<Vec> analytic = P.grad;
  auto loss = [&] {
    for (Vec& g : P.grad) std::fill(g.begin(), g.end(), 0.0);
    return engine.forward_backward(batch, lambda).loss_total;
  };
  for (size_t i = 0; i < P.specs.size(); ++i) {
    if (!P.specs[i].trainable) continue;
    expect_fd(P.specs[i].name, P.value[i], analytic[i], loss, P.value[i].size() > 40 ? 7 : 1);
  }
}

TEST(TrainOps, WholeModelWithMtpQloraYarnSigmoidGroups) {
  const ModelConfig c = tiny_config();
  check_whole_model(c, 11, [&](const DeepseekEngine<double>::Result& r) {
    EXPECT_GT(r.loss_mtp, 0.0);
    EXPECT_NEAR(r.loss_total, r.loss_main + 0.3 * r.loss_mtp, 1e-12);
    ASSERT_EQ(r.loads.size(), 2u);  // layer 1 and the MTP block
    auto sum = [](const std::vector<int64_t>& l) { int64_t s = 0; for (int64_t v : l) s += v; return s; };
    EXPECT_EQ(sum(r.loads[0]), 2 * 5 * 2);  // B·T tokens × top-2
    EXPECT_EQ(sum(r.loads[1]), 2 * 4 * 2);  // the MTP block sees T-1 positions
  });
}

// The sequence-wise balance loss (α large enough that its gradient matters) on top of every
// other loss: whole-model gradients against finite differences, and α = 0 changes nothing.
TEST(TrainOps, WholeModelWithSequenceBalanceLoss) {
  const ModelConfig c = tiny_config();
  DeepseekEngine<double>::Result off;
  check_whole_model(c, 11, [&](const DeepseekEngine<double>::Result& r) { off = r; });
  EXPECT_EQ(off.loss_aux, 0.0);
  check_whole_model(c, 11, [&](const DeepseekEngine<double>::Result& r) {
    EXPECT_EQ(r.loss_main, off.loss_main);  // the balance loss does not change routing
    EXPECT_EQ(r.loss_mtp, off.loss_mtp);
    EXPECT_GT(r.loss_aux, 0.0);
    EXPECT_NEAR(r.loss_total, r.loss_main + 0.3 * r.loss_mtp + r.loss_aux, 1e-12);
  }, 0.8);
}

TEST(TrainOps, WholeModelSoftmaxDirectQTiedNoMtp) {
  ModelConfig c = tiny_config();
  c.q_lora_rank = 0, c.scoring = ScoringFunc::Softmax, c.norm_topk_prob = false;
  c.routed_scaling = 1.0, c.n_group = 1, c.topk_group = 1, c.n_expert_shared = 2;
  c.n_mtp_layers = 0, c.tie_embeddings = true;
  c.rope_scaling.mscale_all_dim = 0.707;
  check_whole_model(c, 21, [&](const DeepseekEngine<double>::Result& r) {
    EXPECT_EQ(r.loss_mtp, 0.0);
    EXPECT_EQ(r.loads.size(), 1u);
  });
}

// The MLA and MoE blocks alone, with their inputs as well as their weights.
TEST(TrainOps, MlaAndMoeBlocksIncludingInputs) {
  for (bool softmax : {false, true}) {
    ModelConfig c = tiny_config();
    if (softmax) c.scoring = ScoringFunc::Softmax, c.norm_topk_prob = false, c.n_group = 1, c.topk_group = 1;
    DoubleParams P(c, softmax ? 31 : 32);
    // Bind layer 1 (MoE) as a block; its bias (sigmoid case) takes part in selection only.
    const Binder<double> bind = P.binder();
    std::mt19937_64 rng(7);
    const int64_t B = 2, S = 4, n = B * S, D = c.n_embd;
    const BlockContext<double> bc = make_block_context<double>(c, B, S);
    auto slot = [&](const std::string& name) { return bind({name, {}}); };
    MlaWeights<double> mla{{}, slot("model.layers.1.self_attn.q_a_proj.weight"),
                           slot("model.layers.1.self_attn.q_a_layernorm.weight"),
                           slot("model.layers.1.self_attn.q_b_proj.weight"),
                           slot("model.layers.1.self_attn.kv_a_proj_with_mqa.weight"),
                           slot("model.layers.1.self_attn.kv_a_layernorm.weight"),
                           slot("model.layers.1.self_attn.kv_b_proj.weight"),
                           slot("model.layers.1.self_attn.o_proj.weight")};
    // Short sequences, and long ones that span several causal gemm chunks (64 rows).
    for (const auto& [Bm, Sm, stride] : {std::tuple{B, S, 1}, {int64_t(1), int64_t(150), 53}}) {
      const BlockContext<double> bcm = make_block_context<double>(c, Bm, Sm);
      const int64_t nm = Bm * Sm;
      Vec xm = random_vec(size_t(nm * D), rng), rm = random_vec(size_t(nm * D), rng);
      auto f_mla = [&] {
        Vec out(size_t(nm * D));
        MlaCache<double> cache;
        mla_forward(bcm, mla, xm.data(), out.data(), cache);
        return dot(out, rm);
      };
      Vec out(size_t(nm * D)), dxm(size_t(nm * D), 0.0);
      MlaCache<double> cache;
      mla_forward(bcm, mla, xm.data(), out.data(), cache);
      for (Vec& g : P.grad) std::fill(g.begin(), g.end(), 0.0);
      mla_backward(bcm, mla, xm.data(), rm.data(), cache, dxm.data());
      expect_fd("mla dxn", xm, dxm, f_mla, size_t(stride));
      for (size_t i = 0; i < P.specs.size(); ++i)
        if (P.specs[i].name == "model.layers.1.self_attn.kv_b_proj.weight" ||
            P.specs[i].name == "model.layers.1.self_attn.q_b_proj.weight") {
          const Vec analytic = P.grad[i];
          expect_fd(P.specs[i].name, P.value[i], analytic, f_mla, size_t(stride % 7 + 1));
        }
    }
    Vec xn = random_vec(size_t(n * D), rng), r = random_vec(size_t(n * D), rng);

    MoeWeights<double> moe;
    moe.router = slot("model.layers.1.mlp.gate.weight");
    std::vector<float> bias;
    if (!softmax) {
      Slot<double> b = slot("model.layers.1.mlp.gate.e_score_correction_bias");
      bias.assign(b.v, b.v + c.n_expert);
      moe.bias = bias.data();
    }
    for (int64_t e = 0; e < c.n_expert; ++e) {
      const std::string q = "model.layers.1.mlp.experts." + std::to_string(e) + ".";
      moe.experts.push_back({slot(q + "gate_proj.weight"), slot(q + "up_proj.weight"),
                             slot(q + "down_proj.weight"), c.n_ff_expert});
    }
    moe.shared = {slot("model.layers.1.mlp.shared_experts.gate_proj.weight"),
                  slot("model.layers.1.mlp.shared_experts.up_proj.weight"),
                  slot("model.layers.1.mlp.shared_experts.down_proj.weight"),
                  c.n_expert_shared * c.n_ff_expert};
    auto f_moe = [&] {
      Vec y(size_t(n * D));
      MoeCache<double> cache;
      moe_forward(c, moe, xn.data(), n, y.data(), cache);
      return dot(y, r);
    };
    // Backward from a forward's cache, against finite differences of `f`: the input's gradient
    // and the router weight's (which exists only through the gate weights of chosen experts).
    Vec y(size_t(n * D)), dxn(size_t(n * D));
    auto check_backward = [&](const std::string& what, const MoeCache<double>& cache, const auto& f) {
      std::fill(dxn.begin(), dxn.end(), 0.0);
      for (Vec& g : P.grad) std::fill(g.begin(), g.end(), 0.0);
      moe_backward(c, moe, xn.data(), n, r.data(), cache, dxn.data());
      expect_fd(what + " dxn", xn, dxn, f);
      for (size_t i = 0; i < P.specs.size(); ++i)
        if (P.specs[i].name == "model.layers.1.mlp.gate.weight") {
          const Vec analytic = P.grad[i];
          expect_fd(what + " router", P.value[i], analytic, f);
        }
    };
    const std::string kind = softmax ? "moe(softmax)" : "moe(sigmoid)";
    MoeCache<double> cache;
    moe_forward(c, moe, xn.data(), n, y.data(), cache);
    check_backward(kind, cache, f_moe);

    // With the sequence-wise balance loss (2 sequences of S tokens): its value recomputed here
    // from the scores and choices, and the gradients of dot(y, r) + L_bal.
    const double alpha = 0.7;
    auto f_bal = [&] {
      Vec yb(size_t(n * D));
      MoeCache<double> cb;
      moe_forward(c, moe, xn.data(), n, yb.data(), cb, S, alpha);
      return dot(yb, r) + cb.aux_loss;
    };
    MoeCache<double> cb;
    moe_forward(c, moe, xn.data(), n, y.data(), cb, S, alpha);
    const int64_t E = c.n_expert, K = c.n_expert_used;
    double want = 0;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < E; ++i) {
        double count = 0, P_i = 0;
        for (int64_t t = b * S; t < (b + 1) * S; ++t) {
          for (int64_t k = 0; k < K; ++k) count += cb.chosen[size_t(t * K + k)] == i;
          double sum = 0;
          for (int64_t j = 0; j < E; ++j) sum += cb.scores[size_t(t * E + j)];
          P_i += cb.scores[size_t(t * E + i)] / sum / double(S);
        }
        want += alpha / double(B) * (double(E) / double(K * S) * count) * P_i;
      }
    }
    EXPECT_NEAR(cb.aux_loss, want, 1e-12);
    EXPECT_GT(cb.aux_loss, 0.0);
    check_backward(kind + "+balance", cb, f_bal);
  }
}

// The vectorised exponentials (train/vec_math.h) against std::exp in double: relative error
// well under float's 1e-6 over the softmax/sigmoid range, tails of every length, extremes.
TEST(TrainOps, VecMathMatchesStdExp) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-90.f, 90.f);
  for (int64_t n : {1, 7, 8, 9, 31, 4096}) {
    std::vector<float> x(static_cast<size_t>(n)), y(x.size()), s(x.size());
    for (auto& v : x) v = u(rng);
    const float mx = max_of(x.data(), n);
    EXPECT_EQ(mx, *std::max_element(x.begin(), x.end()));
    const double sum = exp_shifted_sum(x.data(), mx, y.data(), n);
    double want_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double want = std::exp(double(x[size_t(i)] - mx));  // the argument rounds in float
      want_sum += double(float(want));
      if (want > 1e-37) {
        EXPECT_NEAR(y[size_t(i)], want, 4e-7 * want) << n << " " << x[size_t(i)];
      }
    }
    EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum);
    sigmoid(x.data(), s.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double want = 1.0 / (1.0 + std::exp(-double(x[size_t(i)])));
      EXPECT_NEAR(s[size_t(i)], want, 4e-7 * want + 1e-37) << x[size_t(i)];
    }
  }
  const float extremes[] = {-1000.f, -88.f, 0.f, 88.f, 1000.f, 3.f, -3.f, 20.f};
  float sg[8];
  sigmoid(extremes, sg, 8);
  EXPECT_EQ(sg[2], 0.5f);
  EXPECT_LT(sg[0], 1e-37f);
  EXPECT_EQ(sg[4], 1.0f);
  EXPECT_NEAR(sg[5], 1.0 / (1.0 + std::exp(-3.0)), 1e-7);
}

}  // namespace
}  // namespace whale::train
