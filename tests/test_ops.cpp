// Op-level tests of the float32 kernels and model maths: rmsnorm, softmax, silu/swiglu,
// dot_f32, RoPE (both pairings), rotary frequencies (YaRN, llama3, GGUF divisors), the MLA
// softmax scale, DeepSeek MoE routing, the sampler and matmul over every weight layout.
//
// Every expected value comes from naive reference code written here, independently of the
// implementation (double precision where it matters), following the formulas of
// DESIGN.md section 4 and the fixture README's "Semantics worth knowing":
//   - DeepSeek's inference/model.py (precompute_freqs_cis, Gate, the MLA softmax scale),
//   - transformers' _compute_llama3_parameters and llama.cpp's convert_hf_to_gguf.py
//     (rope_freqs divisors and the Q/K row permutation),
//   - the definition of the matrix product on dequantized weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "kernels/matmul.h"
#include "kernels/matrix.h"
#include "kernels/ops.h"
#include "kernels/quants.h"
#include "model/config.h"
#include "model/moe_routing.h"
#include "model/rope.h"
#include "runtime/sampler.h"

namespace whale {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---- helpers -----------------------------------------------------------------------------

// Deterministic random numbers that do not depend on the standard library's distributions.
struct Rng {
  std::mt19937 g;
  explicit Rng(uint32_t seed) : g(seed) {}
  float uniform(float lo, float hi) { return lo + (hi - lo) * float(g() >> 8) * 0x1p-24f; }
  float normal() {
    const float u1 = (float(g() >> 8) + 1.0f) * 0x1p-24f;
    const float u2 = float(g() >> 8) * 0x1p-24f;
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
  }
  int integer(int lo, int hi) { return lo + int(g() % uint32_t(hi - lo + 1)); }  // [lo, hi]
  std::vector<float> normals(size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (float& x : v) x = scale * normal();
    return v;
  }
};

// |got - want| <= rel * |want| + abs, reported with the index.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel,
                  double abs, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(double(got[i]), want[i], rel * std::fabs(want[i]) + abs)
        << what << " [" << i << "]";
}

double norm2(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * double(x);
  return std::sqrt(s);
}

// ---- rmsnorm -----------------------------------------------------------------------------

// Reference: y = x / sqrt(mean(x^2) + eps) * w, all in double.
std::vector<double> rmsnorm_ref(const std::vector<float>& x, const float* w, double eps) {
  double ss = 0;
  for (float v : x) ss += double(v) * double(v);
  const double r = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = double(x[i]) * r * (w ? double(w[i]) : 1.0);
  return y;
}

TEST(Ops, RmsNormMatchesDoubleReference) {
  Rng rng(1);
  for (int64_t n : {1, 7, 64, 4097}) {
    for (bool with_weight : {false, true}) {
      const auto x = rng.normals(size_t(n), 3.0f);
      std::vector<float> w(static_cast<size_t>(n));
      for (float& v : w) v = rng.uniform(-2.0f, 2.0f);
      std::vector<float> y(static_cast<size_t>(n));
      const float* wp = with_weight ? w.data() : nullptr;
      rmsnorm(x.data(), wp, y.data(), n, 1e-6f);
      SCOPED_TRACE(testing::Message() << "n=" << n << " weight=" << with_weight);
      // eps as the float the kernel receives.
      expect_close(y, rmsnorm_ref(x, wp, double(1e-6f)), 1e-6, 1e-30, "rmsnorm");
    }
  }
}

TEST(Ops, RmsNormEdgeValues) {
  // A zero vector stays zero (eps keeps the scale finite).
  std::vector<float> z(5, 0.0f), y(5, 1.0f);
  rmsnorm(z.data(), nullptr, y.data(), 5, 1e-6f);
  for (float v : y) EXPECT_EQ(v, 0.0f);

  // Length 1: x / sqrt(x^2 + eps) is sign(x) for |x| >> sqrt(eps).
  float one = -3.0f, out = 0;
  rmsnorm(&one, nullptr, &out, 1, 1e-6f);
  EXPECT_NEAR(out, -1.0f, 1e-6f);

  // Squares that overflow float (1e20^2) must still normalise: the reference is in double.
  std::vector<float> big = {1e20f, -2e20f, 3e20f, 0.5e20f, -1e20f, 2e20f, 1e20f};
  std::vector<float> yb(big.size());
  rmsnorm(big.data(), nullptr, yb.data(), int64_t(big.size()), 1e-6f);
  expect_close(yb, rmsnorm_ref(big, nullptr, 1e-6), 1e-6, 0, "rmsnorm big");

  // Tiny values: eps dominates, y = x / sqrt(eps) approximately.
  std::vector<float> tiny = {1e-8f, -2e-8f, 3e-8f};
  std::vector<float> yt(3);
  rmsnorm(tiny.data(), nullptr, yt.data(), 3, 1e-6f);
  expect_close(yt, rmsnorm_ref(tiny, nullptr, double(1e-6f)), 1e-6, 0, "rmsnorm tiny");
}

// ---- softmax -----------------------------------------------------------------------------

// Reference: exp(x - max) / sum, in double; -inf entries give exactly 0.
std::vector<double> softmax_ref(const std::vector<float>& x) {
  double mx = -std::numeric_limits<double>::infinity();
  for (float v : x) mx = std::max(mx, double(v));
  std::vector<double> y(x.size());
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += y[i] = std::exp(double(x[i]) - mx);
  for (double& v : y) v /= s;
  return y;
}

TEST(Ops, SoftmaxMatchesDoubleReference) {
  Rng rng(2);
  for (size_t n : {1u, 2u, 7u, 33u, 1000u}) {
    auto x = rng.normals(n, 4.0f);
    const auto want = softmax_ref(x);
    softmax_inplace(x.data(), int64_t(n));
    SCOPED_TRACE(testing::Message() << "n=" << n);
    expect_close(x, want, 1e-6, 1e-12, "softmax");
    double sum = 0;
    for (float v : x) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST(Ops, SoftmaxLargeValuesInfAndLengthOne) {
  // Values whose exp overflows float must not: the max is subtracted first.
  std::vector<float> big = {1000.0f, 999.0f, 998.0f, -1000.0f, 1000.0f};
  const auto want_big = softmax_ref(big);
  softmax_inplace(big.data(), int64_t(big.size()));
  expect_close(big, want_big, 1e-6, 1e-30, "softmax big");
  for (float v : big) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(big[0], big[4]);

  // -inf entries get probability exactly 0; the rest is a softmax of the finite entries.
  std::vector<float> masked = {0.5f, -kInf, 1.5f, -kInf, -0.25f};
  const auto want_masked = softmax_ref(masked);
  softmax_inplace(masked.data(), int64_t(masked.size()));
  EXPECT_EQ(masked[1], 0.0f);
  EXPECT_EQ(masked[3], 0.0f);
  expect_close(masked, want_masked, 1e-6, 0, "softmax -inf");

  // Length 1: probability 1 whatever the value.
  for (float v : {0.0f, -123.0f, 88.0f, 1e30f}) {
    float x = v;
    softmax_inplace(&x, 1);
    EXPECT_EQ(x, 1.0f) << v;
  }
}

// ---- silu / swiglu -----------------------------------------------------------------------

TEST(Ops, SiluAndSwigluMatchDoubleReference) {
  // Reference: silu(g) = g / (1 + e^-g) in double; swiglu = silu(gate) * up.
  auto silu_ref = [](double g) { return g / (1.0 + std::exp(-g)); };
  Rng rng(3);
  std::vector<float> gate = rng.normals(257, 4.0f);
  // Include the extremes where exp over/underflows in float.
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, 20.0f, -20.0f, 88.0f, -88.0f, 100.0f, -100.0f,
                  1000.0f, -1000.0f})
    gate.push_back(v);
  std::vector<float> up = rng.normals(gate.size(), 2.0f);
  std::vector<float> out(gate.size());
  swiglu(gate.data(), up.data(), out.data(), int64_t(gate.size()));
  std::vector<double> want(gate.size()), want_silu(gate.size());
  std::vector<float> got_silu(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    want_silu[i] = silu_ref(gate[i]);
    want[i] = want_silu[i] * double(up[i]);
    got_silu[i] = silu(gate[i]);
  }
  expect_close(got_silu, want_silu, 1e-6, 1e-30, "silu");
  expect_close(out, want, 2e-6, 1e-30, "swiglu");
  EXPECT_EQ(silu(0.0f), 0.0f);
}

// Each element's SwiGLU does not depend on how many elements share the call (the AVX2 tail
// runs the same 8-wide code), at every ISA level this CPU has, and the levels agree closely.
TEST(Ops, SwigluElementDoesNotDependOnTheCallLength) {
  Rng rng(5);
  const std::vector<float> gate = rng.normals(21, 4.0f), up = rng.normals(21, 2.0f);
  const IsaLevel saved = isa_level();
  std::vector<std::vector<float>> per_level;
  for (IsaLevel l : {IsaLevel::Portable, IsaLevel::Avx2}) {
    if (l > best_isa_level()) continue;
    set_isa_level(l);
    std::vector<float> full(gate.size());
    swiglu(gate.data(), up.data(), full.data(), int64_t(gate.size()));
    for (size_t n = 1; n <= gate.size(); ++n) {
      std::vector<float> part(n);
      swiglu(gate.data(), up.data(), part.data(), int64_t(n));
      EXPECT_EQ(0, std::memcmp(part.data(), full.data(), n * sizeof(float))) << isa_name(l) << " n=" << n;
    }
    per_level.push_back(full);
  }
  set_isa_level(saved);
  for (size_t l = 1; l < per_level.size(); ++l)
    for (size_t i = 0; i < gate.size(); ++i)
      EXPECT_NEAR(per_level[l][i], per_level[0][i], 1e-6f * (1.0f + std::fabs(per_level[0][i])));
}

// ---- dot_f32 -----------------------------------------------------------------------------

TEST(Ops, DotExactOnSmallIntegersForLengths0To40) {
  // Reference: integer dot product; small integers make every float sum exact, so the
  // result must be bit-exact whatever the summation order.
  Rng rng(4);
  for (int64_t n = 0; n <= 40; ++n) {
    std::vector<float> a(size_t(n) + 1), b(size_t(n) + 1);  // +1: non-empty data()
    int64_t want = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int x = rng.integer(-50, 50), y = rng.integer(-50, 50);
      a[size_t(i)] = float(x);
      b[size_t(i)] = float(y);
      want += int64_t(x) * y;
    }
    EXPECT_EQ(dot_f32(a.data(), b.data(), n), float(want)) << "n=" << n;
  }
}

TEST(Ops, DotMatchesDoubleReference) {
  // Reference: double sum. Bound: the standard gamma_n error bound for the longest partial
  // sum (n/8 terms, 8 lanes, then the lane tree), relative to sum |a_i b_i|.
  Rng rng(5);
  std::vector<int64_t> lengths;
  for (int64_t n = 0; n <= 40; ++n) lengths.push_back(n);
  for (int64_t n : {127, 1000, 4097, 100003}) lengths.push_back(n);
  for (int64_t n : lengths) {
    const auto a = rng.normals(size_t(n) + 1), b = rng.normals(size_t(n) + 1);
    double want = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      want += double(a[size_t(i)]) * double(b[size_t(i)]);
      mag += std::fabs(double(a[size_t(i)]) * double(b[size_t(i)]));
    }
    const double bound = double(n / 8 + 12) * 0x1p-24 * mag * 1.01 + 1e-30;
    EXPECT_NEAR(double(dot_f32(a.data(), b.data(), n)), want, bound) << "n=" << n;
  }
  // Unaligned starting points (offset views into one buffer).
  const auto a = rng.normals(64), b = rng.normals(64);
  for (int off = 1; off < 8; ++off) {
    double want = 0;
    for (int i = off; i < 64; ++i) want += double(a[size_t(i)]) * double(b[size_t(i - off)]);
    EXPECT_NEAR(double(dot_f32(a.data() + off, b.data(), 64 - off)), want, 1e-4);
  }
}

// ---- RoPE application --------------------------------------------------------------------

// cos/sin table in the kernel's layout for given angles, computed in double.
std::vector<float> table_for_angles(const std::vector<double>& ang) {
  std::vector<float> cs(2 * ang.size());
  for (size_t i = 0; i < ang.size(); ++i) {
    cs[2 * i] = float(std::cos(ang[i]));
    cs[2 * i + 1] = float(std::sin(ang[i]));
  }
  return cs;
}

// Reference: pair p (indices ia, ib) is the complex number x[ia] + i x[ib], multiplied by
// (cos + i sin) from the same table the kernel receives; done in double.
std::vector<double> rope_ref(const std::vector<float>& x, const std::vector<float>& cs,
                             RopeStyle style) {
  const size_t h = x.size() / 2;
  std::vector<double> y(x.size());
  for (size_t i = 0; i < h; ++i) {
    const size_t ia = style == RopeStyle::Adjacent ? 2 * i : i;
    const size_t ib = style == RopeStyle::Adjacent ? 2 * i + 1 : i + h;
    const double re = x[ia], im = x[ib], c = cs[2 * i], s = cs[2 * i + 1];
    y[ia] = re * c - im * s;  // (re + i im)(c + i s)
    y[ib] = re * s + im * c;
  }
  return y;
}

TEST(Rope, BothStylesMatchComplexMultiplication) {
  Rng rng(6);
  for (int64_t d : {2, 8, 16, 64, 128}) {
    for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::Neox}) {
      std::vector<double> ang(size_t(d / 2));
      for (double& a : ang) a = rng.uniform(-10.0f, 10.0f);
      const auto cs = table_for_angles(ang);
      auto x = rng.normals(size_t(d));
      const auto want = rope_ref(x, cs, style);
      rope_apply(x.data(), cs.data(), d / 2, style);
      SCOPED_TRACE(testing::Message() << "d=" << d << " neox=" << (style == RopeStyle::Neox));
      expect_close(x, want, 1e-6, 1e-6, "rope");
    }
  }
}

TEST(Rope, AdjacentAndNeoxPairDifferentCoordinates) {
  // d = 4, rotate by 90 degrees in pair 0 only: Adjacent mixes x0,x1; Neox mixes x0,x2.
  const std::vector<float> cs = {0.0f, 1.0f, 1.0f, 0.0f};
  std::vector<float> a = {1, 2, 3, 4}, n = {1, 2, 3, 4};
  rope_apply(a.data(), cs.data(), 2, RopeStyle::Adjacent);
  rope_apply(n.data(), cs.data(), 2, RopeStyle::Neox);
  EXPECT_EQ(a, (std::vector<float>{-2, 1, 3, 4}));
  EXPECT_EQ(n, (std::vector<float>{-3, 2, 1, 4}));
}

// llama.cpp's converter permutes Q/K rows of a head of size d from Hugging Face's
// rotate_half layout into pairs: view the rows as [2][d/2], swap to [d/2][2]. So row
// 2i + j of the GGUF head is row j * d/2 + i of the HF head.
std::vector<float> interleave_halves(const std::vector<float>& hf) {
  const size_t h = hf.size() / 2;
  std::vector<float> g(hf.size());
  for (size_t i = 0; i < h; ++i)
    for (size_t j = 0; j < 2; ++j) g[2 * i + j] = hf[j * h + i];
  return g;
}

TEST(Rope, NeoxEqualsAdjacentOnConverterPermutation) {
  // Neox(x) == unpermute(Adjacent(permute(x))): why the GGUF (adjacent pairs on permuted
  // rows) and Hugging Face (rotate_half) llama compute the same attention.
  Rng rng(7);
  for (int64_t d : {2, 16, 32, 128}) {
    std::vector<double> ang(size_t(d / 2));
    for (double& a : ang) a = rng.uniform(-50.0f, 50.0f);
    const auto cs = table_for_angles(ang);
    const auto x = rng.normals(size_t(d));

    auto neox = x;
    rope_apply(neox.data(), cs.data(), d / 2, RopeStyle::Neox);
    auto adj = interleave_halves(x);
    rope_apply(adj.data(), cs.data(), d / 2, RopeStyle::Adjacent);
    const auto neox_permuted = interleave_halves(neox);
    for (size_t i = 0; i < size_t(d); ++i)
      EXPECT_FLOAT_EQ(adj[i], neox_permuted[i]) << "d=" << d << " i=" << i;
  }
}

TEST(Rope, PreservesNormAndRelativePosition) {
  // A rotation preserves the norm, and <R(m) q, R(n) k> depends only on m - n.
  Rng rng(8);
  ModelConfig cfg;
  cfg.rope_theta = 10000;
  const int64_t d = 64;
  const auto inv = rope_inv_freq(cfg, d);
  std::vector<float> cs(static_cast<size_t>(d));
  for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::Neox}) {
    for (int64_t pos : {0, 1, 17, 1000, 4095}) {
      auto x = rng.normals(size_t(d));
      const double before = norm2(x);
      rope_cos_sin(inv, pos, cs.data());
      rope_apply(x.data(), cs.data(), d / 2, style);
      EXPECT_NEAR(norm2(x), before, 1e-5 * before) << "pos=" << pos;
    }
    const auto q = rng.normals(size_t(d)), k = rng.normals(size_t(d));
    auto score = [&](int64_t m, int64_t n) {
      auto qq = q, kk = k;
      rope_cos_sin(inv, m, cs.data());
      rope_apply(qq.data(), cs.data(), d / 2, style);
      rope_cos_sin(inv, n, cs.data());
      rope_apply(kk.data(), cs.data(), d / 2, style);
      double s = 0;
      for (size_t i = 0; i < size_t(d); ++i) s += double(qq[i]) * double(kk[i]);
      return s;
    };
    EXPECT_NEAR(score(10, 3), score(7, 0), 1e-4);
    EXPECT_NEAR(score(105, 100), score(5, 0), 1e-3);
  }
}

TEST(Rope, PositionZeroIsIdentity) {
  ModelConfig cfg;
  const auto inv = rope_inv_freq(cfg, 32);
  std::vector<float> cs(32);
  rope_cos_sin(inv, 0, cs.data());
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_EQ(cs[2 * i], 1.0f);
    EXPECT_EQ(cs[2 * i + 1], 0.0f);
  }
  Rng rng(9);
  const auto x = rng.normals(32);
  for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::Neox}) {
    auto y = x;
    rope_apply(y.data(), cs.data(), 16, style);
    EXPECT_EQ(y, x);
  }
}

TEST(Rope, CosSinTableUsesFloat32Angles) {
  // Reference: PyTorch's angle = float32(pos) * float32(inv_freq) (rounded to float), then
  // cos / sin of that angle. Checked at positions where the float rounding of the angle is
  // visible (the double-exact angle would differ by far more than 1e-6).
  const std::vector<float> inv = {1.0f, 0.3f, 0.0123f, 1.1e-4f, 7.7e-7f};
  std::vector<float> cs(2 * inv.size());
  for (int64_t pos : {0, 1, 2, 3, 1000, 65535, 163839}) {
    rope_cos_sin(inv, pos, cs.data());
    for (size_t i = 0; i < inv.size(); ++i) {
      const float angle = float(pos) * inv[i];
      EXPECT_NEAR(cs[2 * i], std::cos(double(angle)), 1e-6) << pos << " " << i;
      EXPECT_NEAR(cs[2 * i + 1], std::sin(double(angle)), 1e-6) << pos << " " << i;
    }
  }
}

// ---- rotary frequencies -----------------------------------------------------------------

// Plain frequencies theta^(-2i/d), double.
std::vector<double> base_freqs(double theta, int64_t dim) {
  std::vector<double> f(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) f[size_t(i)] = 1.0 / std::pow(theta, double(2 * i) / dim);
  return f;
}

// DeepSeek inference/model.py precompute_freqs_cis (YaRN part), written out in double.
std::vector<double> yarn_ref(double theta, int64_t dim, double factor, double orig,
                             double beta_fast, double beta_slow) {
  auto corr_dim = [&](double rot) {
    return dim * std::log(orig / (rot * 2 * kPi)) / (2 * std::log(theta));
  };
  const double low = std::max(std::floor(corr_dim(beta_fast)), 0.0);
  double high = std::min(std::ceil(corr_dim(beta_slow)), double(dim - 1));
  if (low == high) high += 0.001;
  std::vector<double> f = base_freqs(theta, dim);
  for (size_t i = 0; i < f.size(); ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    const double smooth = 1.0 - ramp;
    f[i] = f[i] / factor * (1 - smooth) + f[i] * smooth;
  }
  return f;
}

ModelConfig yarn_config(double factor, double mscale_all_dim) {
  ModelConfig cfg;
  cfg.arch = Arch::Deepseek2;
  cfg.rope_theta = 10000;
  cfg.rope_scaling.type = RopeScalingType::Yarn;
  cfg.rope_scaling.factor = factor;
  cfg.rope_scaling.original_ctx = 4096;
  cfg.rope_scaling.beta_fast = 32;
  cfg.rope_scaling.beta_slow = 1;
  cfg.rope_scaling.mscale_all_dim = mscale_all_dim;
  return cfg;
}

TEST(RopeFreq, PlainFrequencies) {
  ModelConfig cfg;
  for (double theta : {10000.0, 500000.0, 1e6}) {
    cfg.rope_theta = theta;
    for (int64_t dim : {2, 16, 64, 128}) {
      const auto got = rope_inv_freq(cfg, dim);
      SCOPED_TRACE(testing::Message() << "theta=" << theta << " dim=" << dim);
      expect_close(got, base_freqs(theta, dim), 2e-6, 0, "inv_freq");
    }
  }
}

TEST(RopeFreq, YarnMatchesDeepSeekFormula) {
  const ModelConfig cfg = yarn_config(40, 0.707);
  for (int64_t dim : {16, 64}) {
    const auto got = rope_inv_freq(cfg, dim);
    const auto want = yarn_ref(10000, dim, 40, 4096, 32, 1);
    SCOPED_TRACE(testing::Message() << "dim=" << dim);
    expect_close(got, want, 2e-6, 0, "yarn inv_freq");
    // The formula's three regions are all present: unchanged, ramp, divided by factor.
    const auto base = base_freqs(10000, dim);
    int same = 0, divided = 0, ramp = 0;
    for (size_t i = 0; i < base.size(); ++i) {
      if (std::fabs(want[i] - base[i]) <= 1e-12 * base[i]) ++same;
      else if (std::fabs(want[i] - base[i] / 40) <= 1e-12 * base[i]) ++divided;
      else ++ramp;
    }
    EXPECT_GT(same, 0);
    EXPECT_GT(divided, 0);
    EXPECT_GT(ramp, 0);
  }
}

TEST(RopeFreq, YarnCorrectionRangeEdges) {
  // high clamped to dim - 1 (a tiny beta_slow pushes the ramp's end past the last index),
  // and low == high (both betas huge: the range collapses to 0, DeepSeek adds 0.001).
  struct Case { double beta_fast, beta_slow; };
  for (Case c : {Case{32, 1e-6}, Case{1e4, 1e3}}) {
    ModelConfig cfg = yarn_config(40, 1.0);
    cfg.rope_scaling.beta_fast = c.beta_fast;
    cfg.rope_scaling.beta_slow = c.beta_slow;
    SCOPED_TRACE(testing::Message() << "beta_fast=" << c.beta_fast << " slow=" << c.beta_slow);
    expect_close(rope_inv_freq(cfg, 16), yarn_ref(10000, 16, 40, 4096, c.beta_fast, c.beta_slow),
                 2e-6, 0, "yarn edge");
  }
}

TEST(RopeFreq, MlaSoftmaxScale) {
  // DeepSeek: softmax_scale = qk_head_dim^-0.5, times mscale^2 under YaRN,
  // mscale = 0.1 * mscale_all_dim * ln(factor) + 1.
  for (double msc : {0.707, 1.0}) {
    ModelConfig cfg = yarn_config(40, msc);
    cfg.qk_nope_dim = 128;
    cfg.qk_rope_dim = 64;
    const double m = 0.1 * msc * std::log(40.0) + 1.0;
    EXPECT_NEAR(mla_softmax_scale(cfg), std::pow(192.0, -0.5) * m * m, 1e-7) << msc;
    cfg.qk_nope_dim = 32;
    cfg.qk_rope_dim = 16;
    EXPECT_NEAR(mla_softmax_scale(cfg), std::pow(48.0, -0.5) * m * m, 1e-7) << msc;
  }
  ModelConfig plain;
  plain.arch = Arch::Deepseek2;
  plain.qk_nope_dim = 128;
  plain.qk_rope_dim = 64;
  EXPECT_NEAR(mla_softmax_scale(plain), std::pow(192.0, -0.5), 1e-8);
  // YaRN without mscale_all_dim: m = 1.
  ModelConfig no_m = yarn_config(40, 0);
  no_m.qk_nope_dim = 32;
  no_m.qk_rope_dim = 16;
  EXPECT_NEAR(mla_softmax_scale(no_m), std::pow(48.0, -0.5), 1e-8);
}

// transformers' _compute_llama3_parameters, written out in double. `kind` gets 0 for an
// unchanged frequency, 1 for a smoothed one, 2 for one divided by factor.
std::vector<double> llama3_ref(double theta, int64_t dim, double factor, double low,
                               double high, double orig, std::vector<int>* kind = nullptr) {
  const double low_wavelen = orig / low, high_wavelen = orig / high;
  std::vector<double> f = base_freqs(theta, dim);
  if (kind) kind->assign(f.size(), 0);
  for (size_t i = 0; i < f.size(); ++i) {
    const double wavelen = 2 * kPi / f[i];
    if (wavelen < high_wavelen) continue;  // high frequency: unchanged
    if (wavelen > low_wavelen) {           // low frequency: divided
      f[i] /= factor;
      if (kind) (*kind)[i] = 2;
      continue;
    }
    const double smooth = (orig / wavelen - low) / (high - low);
    f[i] = (1 - smooth) * f[i] / factor + smooth * f[i];
    if (kind) (*kind)[i] = 1;
  }
  return f;
}

ModelConfig llama3_config() {
  ModelConfig cfg;
  cfg.arch = Arch::Llama;
  cfg.rope_theta = 500000;
  cfg.rope_scaling.type = RopeScalingType::Llama3;
  cfg.rope_scaling.factor = 8;
  cfg.rope_scaling.low_freq_factor = 1;
  cfg.rope_scaling.high_freq_factor = 4;
  cfg.rope_scaling.original_ctx = 8192;
  return cfg;
}

TEST(RopeFreq, Llama3MatchesTransformersFormula) {
  const ModelConfig cfg = llama3_config();
  for (int64_t dim : {32, 128}) {
    const auto got = rope_inv_freq(cfg, dim);
    const auto want = llama3_ref(500000, dim, 8, 1, 4, 8192);
    SCOPED_TRACE(testing::Message() << "dim=" << dim);
    expect_close(got, want, 2e-6, 0, "llama3 inv_freq");
  }
}

TEST(RopeFreq, Llama3HeadDim32ChangesEightOfSixteen) {
  // theta 500000, d 32: wavelength 2*pi*500000^(i/16). Unchanged while < 8192/4 = 2048
  // (i <= 7), smoothed while <= 8192 (i = 8, wavelength ~4443), divided by 8 beyond (i >= 9).
  // So 8 of 16 change: 1 smoothed and 7 divided. (The fixture README says "3 smoothed,
  // 5 divided"; the formula, and the fixture GGUF's rope_freqs = [1 x8, 2.6945, 8 x7], give
  // 1 and 7.)
  const ModelConfig cfg = llama3_config();
  std::vector<int> kind;
  llama3_ref(500000, 32, 8, 1, 4, 8192, &kind);
  const auto got = rope_inv_freq(cfg, 32);
  const auto base = base_freqs(500000, 32);
  int changed = 0, smoothed = 0, divided = 0;
  for (size_t i = 0; i < 16; ++i) {
    const double ratio = base[i] / double(got[i]);
    if (std::fabs(ratio - 1) > 1e-5) ++changed;
    if (std::fabs(ratio - 8) <= 1e-5) ++divided;
    else if (std::fabs(ratio - 1) > 1e-5) ++smoothed;
    EXPECT_EQ(kind[i], i <= 7 ? 0 : i == 8 ? 1 : 2) << i;
  }
  EXPECT_EQ(changed, 8);
  EXPECT_EQ(smoothed, 1);
  EXPECT_EQ(divided, 7);
}

// llama.cpp convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors): rope_freqs holds a
// divisor per frequency: 1, factor, or 1 / ((1 - smooth) / factor + smooth).
std::vector<float> llama3_divisors(double theta, int64_t dim, double factor, double low,
                                   double high, double orig) {
  std::vector<float> div;
  for (double f : base_freqs(theta, dim)) {
    const double wavelen = 2 * kPi / f;
    if (wavelen < orig / high) div.push_back(1.0f);
    else if (wavelen > orig / low) div.push_back(float(factor));
    else {
      const double smooth = (orig / wavelen - low) / (high - low);
      div.push_back(float(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return div;
}

TEST(RopeFreq, GgufDivisors) {
  // The divisors reproduce the llama3 frequencies, and when given they replace the
  // config's scaling (a GGUF llama3 model has both rope_freqs and scaling metadata).
  for (int64_t dim : {32, 128}) {
    const auto div = llama3_divisors(500000, dim, 8, 1, 4, 8192);
    const auto want = llama3_ref(500000, dim, 8, 1, 4, 8192);
    ModelConfig plain;
    plain.rope_theta = 500000;
    SCOPED_TRACE(testing::Message() << "dim=" << dim);
    expect_close(rope_inv_freq(plain, dim, &div), want, 2e-6, 0, "divisors");
    expect_close(rope_inv_freq(llama3_config(), dim, &div), want, 2e-6, 0, "divisors+cfg");
  }
  // Divisors for d = 32 as the fixture GGUF stores them: [1 x 8, 2.69453, 8 x 7].
  const auto div32 = llama3_divisors(500000, 32, 8, 1, 4, 8192);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(div32[i], 1.0f);
  EXPECT_NEAR(div32[8], 2.6945300f, 1e-5f);
  for (size_t i = 9; i < 16; ++i) EXPECT_EQ(div32[i], 8.0f);

  // Arbitrary divisors: f_i / div_i.
  ModelConfig cfg;
  cfg.rope_theta = 10000;
  const std::vector<float> arb = {1.0f, 2.0f, 0.5f, 3.0f, 10.0f, 1.5f, 7.0f, 100.0f};
  const auto base = base_freqs(10000, 16);
  std::vector<double> want(8);
  for (size_t i = 0; i < 8; ++i) want[i] = base[i] / arb[i];
  expect_close(rope_inv_freq(cfg, 16, &arb), want, 2e-6, 0, "arbitrary divisors");
}

// ---- MoE routing ------------------------------------------------------------------------

// DeepSeek's Gate (inference/model.py), written out in double:
//   scores = softmax(logits) | sigmoid(logits); sel = scores + bias (selection only)
//   groups: score = max(sel in group) without bias, sum of the top-2 of sel with bias;
//           keep the topk_group best (ties: lower group), mask the others to -inf
//   experts = top-k of sel (best first, ties: lower index); weights = scores[experts],
//   / their sum when norm_topk_prob, * routed_scaling.
// `margin` is the smallest score gap the decision depended on (for skipping near-ties that
// float32 rounding may legitimately decide the other way).
struct RouteRef {
  std::vector<int32_t> experts;
  std::vector<double> weights;
  double margin = std::numeric_limits<double>::infinity();
};

RouteRef route_ref(const RouterParams& p, const std::vector<float>& logits) {
  const int64_t E = p.n_expert;
  std::vector<double> scores(static_cast<size_t>(E));
  if (p.scoring == ScoringFunc::Softmax) {
    double mx = -std::numeric_limits<double>::infinity(), sum = 0;
    for (float l : logits) mx = std::max(mx, double(l));
    for (int64_t e = 0; e < E; ++e) sum += scores[size_t(e)] = std::exp(logits[size_t(e)] - mx);
    for (double& s : scores) s /= sum;
  } else {
    for (int64_t e = 0; e < E; ++e) scores[size_t(e)] = 1.0 / (1.0 + std::exp(-double(logits[size_t(e)])));
  }
  std::vector<double> sel(scores);
  if (p.bias)
    for (int64_t e = 0; e < E; ++e) sel[size_t(e)] += p.bias[e];

  RouteRef r;
  // Sort indices by (value desc, index asc): a stable sort on descending value.
  auto ranked = [](const std::vector<double>& v, const std::vector<int32_t>& ids) {
    std::vector<int32_t> o(ids);
    std::stable_sort(o.begin(), o.end(), [&](int32_t a, int32_t b) { return v[size_t(a)] > v[size_t(b)]; });
    return o;
  };
  std::vector<int32_t> allowed;
  if (p.n_group > 1) {
    const int64_t per = E / p.n_group;
    std::vector<double> gs(size_t(p.n_group));
    std::vector<int32_t> groups(size_t(p.n_group));
    std::iota(groups.begin(), groups.end(), 0);
    for (int64_t g = 0; g < p.n_group; ++g) {
      std::vector<double> v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
      std::sort(v.begin(), v.end(), std::greater<>());
      gs[size_t(g)] = p.bias ? v[0] + v[1] : v[0];
    }
    const auto order = ranked(gs, groups);
    if (p.topk_group < p.n_group)
      r.margin = std::min(r.margin, gs[size_t(order[size_t(p.topk_group - 1)])] -
                                        gs[size_t(order[size_t(p.topk_group)])]);
    for (int64_t k = 0; k < p.topk_group; ++k)
      for (int64_t i = 0; i < per; ++i) allowed.push_back(int32_t(order[size_t(k)] * per + i));
    std::sort(allowed.begin(), allowed.end());
  } else {
    allowed.resize(size_t(E));
    std::iota(allowed.begin(), allowed.end(), 0);
  }
  const auto order = ranked(sel, allowed);
  for (int64_t k = 0; k < p.top_k; ++k) r.experts.push_back(order[size_t(k)]);
  for (size_t k = 0; k + 1 < order.size() && k < size_t(p.top_k); ++k)  // order and boundary
    r.margin = std::min(r.margin, sel[size_t(order[k])] - sel[size_t(order[k + 1])]);
  double sum = 0;
  for (int32_t e : r.experts) sum += scores[size_t(e)];
  for (int32_t e : r.experts)
    r.weights.push_back(scores[size_t(e)] / (p.norm_topk_prob ? sum : 1.0) * p.routed_scaling);
  return r;
}

struct RouteOut {
  std::vector<int32_t> experts;
  std::vector<float> weights;
};

RouteOut route(const RouterParams& p, const std::vector<float>& logits) {
  RouteOut o{std::vector<int32_t>(size_t(p.top_k), -1), std::vector<float>(size_t(p.top_k))};
  std::vector<float> scratch(size_t(3 * p.n_expert));  // exactly what the header asks for
  route_token(p, logits.data(), o.experts.data(), o.weights.data(), scratch.data());
  return o;
}

TEST(MoeRouting, RandomCasesMatchDeepSeekGate) {
  int checked = 0, skipped = 0;
  uint32_t seed = 100;
  for (int64_t E : {8, 16, 64}) {
    for (int64_t G : {1, 2, 4, 8}) {
      const int64_t per = E / G;
      for (int64_t TG = 1; TG <= G; TG = TG == G ? G + 1 : std::min(G, TG * 2)) {
        for (ScoringFunc sf : {ScoringFunc::Softmax, ScoringFunc::Sigmoid}) {
          for (bool with_bias : {false, true}) {
            if (with_bias && G > 1 && per < 2) continue;  // top-2 of a group needs 2 experts
            for (int64_t K = 1; K <= std::min<int64_t>(8, TG * per); ++K) {
              for (int rep = 0; rep < 4; ++rep) {
                Rng rng(seed++);
                const auto logits = rng.normals(size_t(E), 2.0f);
                std::vector<float> bias(static_cast<size_t>(E));
                for (float& b : bias) b = rng.uniform(-0.2f, 0.2f);
                RouterParams p;
                p.scoring = sf;
                p.n_expert = E;
                p.top_k = K;
                p.n_group = G;
                p.topk_group = TG;
                p.norm_topk_prob = rep % 2 == 1;
                p.routed_scaling = rep < 2 ? 1.0f : 2.5f;
                p.bias = with_bias ? bias.data() : nullptr;
                const RouteRef want = route_ref(p, logits);
                if (want.margin < 1e-5) {
                  ++skipped;
                  continue;
                }
                ++checked;
                const RouteOut got = route(p, logits);
                SCOPED_TRACE(testing::Message()
                             << "E=" << E << " G=" << G << " TG=" << TG << " K=" << K
                             << " sigmoid=" << (sf == ScoringFunc::Sigmoid)
                             << " bias=" << with_bias << " seed=" << seed - 1);
                EXPECT_EQ(got.experts, want.experts);
                expect_close(got.weights, want.weights, 2e-6, 1e-7, "weights");
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
  EXPECT_LT(skipped, checked / 50 + 1);
}

TEST(MoeRouting, DeepSeekV3AndV2Configurations) {
  // The real shapes: V3 (256 experts, sigmoid + bias, 8 groups keep 4, top-8, norm,
  // x2.5) and V2 (160 experts, softmax, 8 groups keep 3, top-6, x16).
  for (int variant = 0; variant < 2; ++variant) {
    for (uint32_t s = 0; s < 50; ++s) {
      Rng rng(1000 + s);
      RouterParams p;
      std::vector<float> bias;
      if (variant == 0) {
        p.scoring = ScoringFunc::Sigmoid;
        p.n_expert = 256, p.top_k = 8, p.n_group = 8, p.topk_group = 4;
        p.norm_topk_prob = true, p.routed_scaling = 2.5f;
        for (int e = 0; e < 256; ++e) bias.push_back(rng.uniform(-0.5f, 0.5f));
        p.bias = bias.data();
      } else {
        p.scoring = ScoringFunc::Softmax;
        p.n_expert = 160, p.top_k = 6, p.n_group = 8, p.topk_group = 3;
        p.norm_topk_prob = false, p.routed_scaling = 16.0f;
      }
      const auto logits = rng.normals(size_t(p.n_expert), 3.0f);
      const RouteRef want = route_ref(p, logits);
      if (want.margin < 1e-5) continue;
      const RouteOut got = route(p, logits);
      EXPECT_EQ(got.experts, want.experts) << "variant " << variant << " seed " << s;
      expect_close(got.weights, want.weights, 2e-6, 1e-7, "weights");
    }
  }
}

TEST(MoeRouting, EqualScoresPickLowerExpert) {
  for (ScoringFunc sf : {ScoringFunc::Softmax, ScoringFunc::Sigmoid}) {
    RouterParams p;
    p.scoring = sf;
    p.n_expert = 8;
    p.top_k = 3;
    // All equal: experts 0, 1, 2 in that order.
    const RouteOut all = route(p, std::vector<float>(8, 0.5f));
    EXPECT_EQ(all.experts, (std::vector<int32_t>{0, 1, 2}));
    // Ties among the best: 5 and 2 equal and highest, then 6 and 3 equal.
    const std::vector<float> l = {0.0f, 0.1f, 2.0f, 1.0f, -1.0f, 2.0f, 1.0f, 0.0f};
    const RouteOut got = route(p, l);
    EXPECT_EQ(got.experts, (std::vector<int32_t>{2, 5, 3}));
    EXPECT_EQ(got.weights[0], got.weights[1]);
    // Equal selection scores made equal by the bias: lower index still wins.
    const std::vector<float> bias = {0, 0, 0, 0, 0, 0, 0, 0};
    p.bias = bias.data();
    EXPECT_EQ(route(p, l).experts, (std::vector<int32_t>{2, 5, 3}));
  }
}

TEST(MoeRouting, EqualGroupScoresPickLowerGroup) {
  // 4 groups of 2; groups 1 and 3 tie for the best group score, keep 1 group -> group 1.
  RouterParams p;
  p.scoring = ScoringFunc::Sigmoid;
  p.n_expert = 8;
  p.top_k = 2;
  p.n_group = 4;
  p.topk_group = 1;
  const std::vector<float> l = {0.0f, -1.0f, 1.0f, 0.5f, -2.0f, 0.2f, 0.5f, 1.0f};
  EXPECT_EQ(route(p, l).experts, (std::vector<int32_t>{2, 3}));  // max: group 1 == group 3
  const std::vector<float> zero(8, 0.0f);
  p.bias = zero.data();
  EXPECT_EQ(route(p, l).experts, (std::vector<int32_t>{2, 3}));  // top-2 sums equal too
  // Keep 2 groups of 4 tied ones: groups 0 and 1 (all scores equal).
  p.bias = nullptr;
  p.topk_group = 2;
  p.top_k = 4;
  EXPECT_EQ(route(p, std::vector<float>(8, 1.0f)).experts,
            (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(MoeRouting, GroupRestrictionChangesChoice) {
  // Group 0 holds the single best expert; group 1 holds several good ones.
  //   experts:  0     1     2     3   | 4    5    6    7
  const std::vector<float> l = {3.0f, -3.0f, -3.0f, -3.0f, 2.0f, 1.9f, 1.8f, 1.7f};
  RouterParams p;
  p.scoring = ScoringFunc::Sigmoid;
  p.n_expert = 8;
  p.top_k = 2;
  // No groups: the global top-2.
  EXPECT_EQ(route(p, l).experts, (std::vector<int32_t>{0, 4}));
  // V2 style (no bias, group score = max): group 0 wins, its second expert is poor but in.
  p.n_group = 2;
  p.topk_group = 1;
  EXPECT_EQ(route(p, l).experts, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(route_ref(p, l).experts, (std::vector<int32_t>{0, 1}));
  // V3 style (bias, group score = sum of top-2): group 1 wins, excluding the best expert.
  const std::vector<float> zero(8, 0.0f);
  p.bias = zero.data();
  EXPECT_EQ(route(p, l).experts, (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(route_ref(p, l).experts, (std::vector<int32_t>{4, 5}));
  // The bias steers selection but the weights stay the unbiased scores.
  const std::vector<float> bias = {0, 0, 0, 0, -0.5f, 0, 0, 0.5f};
  p.bias = bias.data();
  p.norm_topk_prob = false;
  p.routed_scaling = 2.0f;
  const RouteOut got = route(p, l);
  EXPECT_EQ(got.experts, (std::vector<int32_t>{7, 5}));
  EXPECT_NEAR(got.weights[0], 2.0 / (1 + std::exp(-1.7)), 1e-6);
  EXPECT_NEAR(got.weights[1], 2.0 / (1 + std::exp(-1.9)), 1e-6);
}

TEST(MoeRouting, WeightsNormalisedAndScaled) {
  // Softmax scores, top-3 of 6, normalised then x 2.5: the weights sum to 2.5.
  RouterParams p;
  p.scoring = ScoringFunc::Softmax;
  p.n_expert = 6;
  p.top_k = 3;
  p.norm_topk_prob = true;
  p.routed_scaling = 2.5f;
  const std::vector<float> l = {0.3f, -1.0f, 2.0f, 0.9f, 1.4f, -0.2f};
  const RouteOut got = route(p, l);
  EXPECT_EQ(got.experts, (std::vector<int32_t>{2, 4, 3}));
  EXPECT_NEAR(got.weights[0] + got.weights[1] + got.weights[2], 2.5, 1e-5);
  // Without normalisation the weights are the softmax probabilities themselves.
  p.norm_topk_prob = false;
  p.routed_scaling = 1.0f;
  const auto sm = softmax_ref(l);
  const RouteOut raw = route(p, l);
  EXPECT_NEAR(raw.weights[0], sm[2], 1e-6);
  EXPECT_NEAR(raw.weights[1], sm[4], 1e-6);
  EXPECT_NEAR(raw.weights[2], sm[3], 1e-6);
}

// ---- sampler ----------------------------------------------------------------------------

std::vector<int32_t> draw(Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(logits.data(), int64_t(logits.size())));
  return out;
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  const std::vector<float> l = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f};
  EXPECT_EQ(argmax_lowest(l.data(), 5), 1);
  EXPECT_EQ(argmax_lowest(l.data(), 1), 0);
  const std::vector<float> all_eq(7, -2.0f);
  EXPECT_EQ(argmax_lowest(all_eq.data(), 7), 0);
  const std::vector<float> neg = {-5.0f, -kInf, -0.1f, -0.1f};
  EXPECT_EQ(argmax_lowest(neg.data(), 4), 2);
  for (float t : {0.0f, -1.0f}) {
    Sampler s({t, 40, 0.95f, 123});
    for (int32_t id : draw(s, l, 20)) EXPECT_EQ(id, 1);
  }
}

TEST(Sampler, SameSeedSameSequence) {
  Rng rng(11);
  const auto logits = rng.normals(50, 1.5f);
  Sampler a({1.0f, 0, 1.0f, 42}), b({1.0f, 0, 1.0f, 42}), c({1.0f, 0, 1.0f, 43});
  const auto sa = draw(a, logits, 200), sb = draw(b, logits, 200), sc = draw(c, logits, 200);
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  // With top-k / top-p filtering too.
  Sampler d({0.7f, 10, 0.9f, 7}), e({0.7f, 10, 0.9f, 7});
  EXPECT_EQ(draw(d, logits, 200), draw(e, logits, 200));
}

TEST(Sampler, TopK1AndTinyTopPAreGreedy) {
  Rng rng(12);
  for (int rep = 0; rep < 20; ++rep) {
    auto logits = rng.normals(100, 2.0f);
    if (rep % 4 == 0) logits[size_t(rep + 7)] = logits[size_t(argmax_lowest(logits.data(), 100))];
    const int32_t best = argmax_lowest(logits.data(), 100);
    for (float t : {0.1f, 1.0f, 5.0f, 100.0f}) {
      Sampler k1({t, 1, 1.0f, uint64_t(rep)});
      for (int32_t id : draw(k1, logits, 10)) EXPECT_EQ(id, best) << "top_k 1, T " << t;
      Sampler p0({t, 0, 1e-6f, uint64_t(rep)});
      for (int32_t id : draw(p0, logits, 10)) EXPECT_EQ(id, best) << "top_p 1e-6, T " << t;
    }
  }
}

// Pearson's chi-square of observed counts against expected probabilities (cells with
// expected probability 0 must not be observed at all).
double chi_square(const std::vector<int>& counts, const std::vector<double>& probs, int n) {
  double chi2 = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
      continue;
    }
    const double e = probs[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi2;
}

std::vector<int> histogram(Sampler& s, const std::vector<float>& logits, int n) {
  std::vector<int> c(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++c[size_t(s.sample(logits.data(), int64_t(logits.size())))];
  return c;
}

TEST(Sampler, FrequenciesFollowTemperatureSoftmax) {
  // Reference: p = softmax(logits / T); nucleus and top-k restrict to the best tokens and
  // renormalise. 8 tokens, 100000 draws, fixed seeds: chi-square with <= 7 degrees of
  // freedom, bound 40 (p-value < 1e-5 for a correct sampler; deterministic anyway).
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, 1.5f, -1.0f, 0.7f};
  const int n = 100000;
  auto tempered = [&](float t) {
    std::vector<float> s(logits);
    for (float& v : s) v /= t;
    return softmax_ref(s);
  };
  for (float t : {0.5f, 1.0f, 2.0f}) {
    Sampler s({t, 0, 1.0f, 2024});
    EXPECT_LT(chi_square(histogram(s, logits, n), tempered(t), n), 40.0) << "T " << t;
  }
  // top_k = 3 at T = 1: only tokens 3, 5, 0, renormalised.
  {
    auto p = tempered(1.0f);
    const double z = p[3] + p[5] + p[0];
    std::vector<double> q(8, 0.0);
    for (size_t i : {3u, 5u, 0u}) q[i] = p[i] / z;
    Sampler s({1.0f, 3, 1.0f, 77});
    EXPECT_LT(chi_square(histogram(s, logits, n), q, n), 40.0) << "top_k 3";
  }
  // top_p = 0.6 at T = 1: sorted probs 0.346, 0.210, 0.127, ...: cumulative 0.346, 0.556,
  // 0.683 -> the smallest prefix reaching 0.6 is the best three tokens.
  {
    auto p = tempered(1.0f);
    std::vector<size_t> order(8);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
    double cum = 0;
    size_t keep = 0;
    while (cum < 0.6) cum += p[order[keep++]];
    ASSERT_EQ(keep, 3u);
    ASSERT_GT(cum - 0.6, 0.05);  // far from the boundary
    std::vector<double> q(8, 0.0);
    for (size_t k = 0; k < keep; ++k) q[order[k]] = p[order[k]] / cum;
    Sampler s({1.0f, 0, 0.6f, 99});
    EXPECT_LT(chi_square(histogram(s, logits, n), q, n), 40.0) << "top_p 0.6";
  }
}

// A nucleus wider than the first sorted chunk of candidates (the sampler sorts only as many of
// the best tokens as top-p needs, growing that prefix): draws stay inside the reference nucleus
// (full sort, cumulative softmax) and reach well past its first 64 tokens.
TEST(Sampler, WideNucleusOverLargeVocabulary) {
  Rng rng(13);
  const auto logits = rng.normals(5000, 0.5f);
  const float top_p = 0.5f;
  const auto p = softmax_ref(logits);
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  std::vector<bool> in_nucleus(p.size(), false);
  double cum = 0;
  size_t keep = 0;
  while (cum < top_p) {
    in_nucleus[order[keep]] = true;
    cum += p[order[keep++]];
  }
  ASSERT_GT(keep, 512u);  // beyond two growth steps of the sorted prefix
  Sampler s({1.0f, 0, top_p, 5});
  const auto c = histogram(s, logits, 4000);
  size_t distinct = 0, outside = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    distinct += c[i] > 0;
    // A token right at the boundary may fall either way by rounding; nothing beyond it may.
    if (c[i] > 0 && !in_nucleus[i] && i != order[keep]) ++outside;
  }
  EXPECT_EQ(outside, 0u);
  EXPECT_GT(distinct, keep / 2);
}

// ---- matmul ------------------------------------------------------------------------------

// Independent scalar decoders for the plain types.
double half_to_double(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v = exp == 0 ? std::ldexp(double(man), -24)
             : exp == 31 ? (man ? std::numeric_limits<double>::quiet_NaN()
                                : std::numeric_limits<double>::infinity())
                         : std::ldexp(1.0 + man / 1024.0, exp - 15);
  return sign ? -v : v;
}
double bf16_to_double(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// float8_e4m3fn: bias 7, no infinities; S.1111.111 is NaN (never generated here).
double e4m3_to_double(uint8_t v) {
  const int sign = v >> 7, exp = (v >> 3) & 0xf, man = v & 7;
  const double m = exp == 0 ? std::ldexp(man / 8.0, -6) : std::ldexp(1.0 + man / 8.0, exp - 7);
  return sign ? -m : m;
}

// A weight matrix owning its bytes, with its values decoded for the reference.
struct TestMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;    // FP8 block scales
  std::vector<double> dense;    // rows x cols decoded values (scales applied)
  Matrix m;
};

TestMatrix make_matrix(DType t, int64_t rows, int64_t cols, Rng& rng) {
  TestMatrix tm;
  const uint64_t rb = *dtype_bytes(t, uint64_t(cols));
  tm.bytes.resize(rb * uint64_t(rows));
  tm.dense.resize(size_t(rows * cols));
  std::vector<float> src(static_cast<size_t>(cols)), deq(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : src) v = rng.normal();
    uint8_t* row = tm.bytes.data() + uint64_t(r) * rb;
    quantize_row(t, src.data(), row, cols);
    if (t == DType::Q4_K) dequantize_row(t, row, deq.data(), cols);  // layout: test_quants
    for (int64_t j = 0; j < cols; ++j) {
      double v = 0;
      switch (t) {
        case DType::F32: v = src[size_t(j)]; break;
        case DType::F16: v = half_to_double(uint16_t(row[2 * j] | row[2 * j + 1] << 8)); break;
        case DType::BF16: v = bf16_to_double(uint16_t(row[2 * j] | row[2 * j + 1] << 8)); break;
        case DType::Q8_0: {  // 34-byte blocks: f16 d, int8 q[32]
          const uint8_t* b = row + (j / 32) * 34;
          v = half_to_double(uint16_t(b[0] | b[1] << 8)) * double(int8_t(b[2 + j % 32]));
          break;
        }
        case DType::Q4_K: v = deq[size_t(j)]; break;
        default: ADD_FAILURE() << "unexpected type";
      }
      tm.dense[size_t(r * cols + j)] = v;
    }
  }
  tm.m.dtype = t;
  tm.m.rows = rows;
  tm.m.cols = cols;
  tm.m.data = tm.bytes.data();
  tm.m.row_bytes = rb;
  return tm;
}

// DeepSeek FP8: e4m3 bytes, W[i][j] = e4m3[i][j] * scale[i/128][j/128].
TestMatrix make_fp8_matrix(int64_t rows, int64_t cols, Rng& rng) {
  TestMatrix tm;
  const int64_t sr = (rows + 127) / 128, sc = (cols + 127) / 128;
  tm.bytes.resize(size_t(rows * cols));
  for (uint8_t& b : tm.bytes) {
    do b = uint8_t(rng.g() >> 24);
    while ((b & 0x7f) == 0x7f);  // no NaN
  }
  tm.scales.resize(size_t(sr * sc));
  for (float& s : tm.scales) s = rng.uniform(1e-4f, 4e-3f);
  tm.dense.resize(size_t(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      tm.dense[size_t(i * cols + j)] = e4m3_to_double(tm.bytes[size_t(i * cols + j)]) *
                                       double(tm.scales[size_t((i / 128) * sc + j / 128)]);
  tm.m.dtype = DType::F8_E4M3;
  tm.m.rows = rows;
  tm.m.cols = cols;
  tm.m.data = tm.bytes.data();
  tm.m.row_bytes = uint64_t(cols);
  tm.m.block_scale = tm.scales.data();
  tm.m.scale_cols = sc;
  return tm;
}

constexpr float kPad = -12345.0f;  // sentinel for padding the kernels must not touch

// Checks matmul on rows [r0, r0 + m.rows) of `tm` (m a row_slice view, or the whole matrix).
// Reference: Y[t][r] = sum_j W[r0 + r][j] X[t][j] in double; X rows padded with NaN (must
// not be read), Y rows padded with a sentinel (must not be written).
void check_matmul(const TestMatrix& tm, const Matrix& m, int64_t r0, int64_t n_tok, Rng& rng) {
  const int64_t cols = m.cols, rows = m.rows, ldx = cols + 5, ldy = rows + 3;
  std::vector<float> X(size_t(n_tok * ldx), std::numeric_limits<float>::quiet_NaN());
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t j = 0; j < cols; ++j) X[size_t(t * ldx + j)] = rng.normal();
  std::vector<float> Y(size_t(n_tok * ldy), kPad);
  // The 1e-5 tolerance below is the exact path's (f32 activations); the fast path (8-bit
  // activations) is checked by test_kernels.
  const MatmulPrecision saved = matmul_precision();
  set_matmul_precision(MatmulPrecision::Exact);
  matmul(m, X.data(), n_tok, ldx, Y.data(), ldy);
  set_matmul_precision(saved);
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double want = 0, mag = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double p = tm.dense[size_t((r0 + r) * tm.m.cols + j)] * X[size_t(t * ldx + j)];
        want += p;
        mag += std::fabs(p);
      }
      ASSERT_NEAR(Y[size_t(t * ldy + r)], want, 1e-5 * mag + 1e-30)
          << "t=" << t << " r=" << r << " (slice at " << r0 << ")";
    }
    for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(Y[size_t(t * ldy + r)], kPad);
  }
}

// Same for matmul_transposed: Y[t][j] = sum_r X[t][r] W[r0 + r][j].
void check_matmul_t(const TestMatrix& tm, const Matrix& m, int64_t r0, int64_t n_tok, Rng& rng) {
  const int64_t cols = m.cols, rows = m.rows, ldx = rows + 3, ldy = cols + 5;
  std::vector<float> X(size_t(n_tok * ldx), std::numeric_limits<float>::quiet_NaN());
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t r = 0; r < rows; ++r) X[size_t(t * ldx + r)] = rng.normal();
  std::vector<float> Y(size_t(n_tok * ldy), kPad);
  matmul_transposed(m, X.data(), n_tok, ldx, Y.data(), ldy);
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t j = 0; j < cols; ++j) {
      double want = 0, mag = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const double p = tm.dense[size_t((r0 + r) * tm.m.cols + j)] * X[size_t(t * ldx + r)];
        want += p;
        mag += std::fabs(p);
      }
      ASSERT_NEAR(Y[size_t(t * ldy + j)], want, 1e-5 * mag + 1e-30)
          << "t=" << t << " j=" << j << " (slice at " << r0 << ")";
    }
    for (int64_t j = cols; j < ldy; ++j) ASSERT_EQ(Y[size_t(t * ldy + j)], kPad);
  }
}

// Whole matrix, a slice, and a slice of a slice, with 1, 3 and 17 tokens, both products.
void check_all_products(const TestMatrix& tm, int64_t s0, int64_t sn, int64_t s1, int64_t sn1,
                        Rng& rng) {
  const Matrix slice = tm.m.row_slice(s0, sn);
  const Matrix slice2 = slice.row_slice(s1, sn1);
  EXPECT_EQ(slice.rows, sn);
  EXPECT_EQ(slice2.row0, s0 + s1);
  for (int64_t n_tok : {1, 3, 17}) {
    SCOPED_TRACE(testing::Message() << "dtype=" << dtype_name(tm.m.dtype) << " n_tok=" << n_tok);
    check_matmul(tm, tm.m, 0, n_tok, rng);
    check_matmul(tm, slice, s0, n_tok, rng);
    check_matmul(tm, slice2, s0 + s1, n_tok, rng);
    check_matmul_t(tm, tm.m, 0, n_tok, rng);
    check_matmul_t(tm, slice, s0, n_tok, rng);
    check_matmul_t(tm, slice2, s0 + s1, n_tok, rng);
  }
}

TEST(Matmul, PlainTypesMatchNaiveProduct) {
  // F32 / F16 / BF16 weights built with quantize_row, decoded here independently.
  Rng rng(20);
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const TestMatrix tm = make_matrix(t, 37, 300, rng);
    check_all_products(tm, 5, 20, 3, 9, rng);
  }
}

TEST(Matmul, QuantizedTypesMatchNaiveProduct) {
  // Q8_0 decoded here from its 34-byte blocks; Q4_K via dequantize_row (its layout is
  // checked byte by byte in test_quants).
  Rng rng(21);
  const TestMatrix q8 = make_matrix(DType::Q8_0, 37, 320, rng);
  check_all_products(q8, 7, 25, 1, 1, rng);
  const TestMatrix q4k = make_matrix(DType::Q4_K, 29, 512, rng);
  check_all_products(q4k, 2, 19, 10, 9, rng);
}

TEST(Matmul, Fp8BlockScalesWithPartialBlocks) {
  // 200 x 300: scale grid 2 x 3 with partial edge blocks in both directions. Slices that
  // start inside the first row block and cross into the second exercise row0.
  Rng rng(22);
  const TestMatrix tm = make_fp8_matrix(200, 300, rng);
  check_all_products(tm, 100, 60, 20, 30, rng);  // rows 100..159, then 120..149
  check_all_products(tm, 130, 70, 0, 70, rng);   // entirely in the second row block
  // Row dequantisation of a slice applies its own block's scales.
  const Matrix s = tm.m.row_slice(127, 3);
  std::vector<float> row(300);
  for (int64_t i = 0; i < 3; ++i) {
    s.dequantize_row(i, row.data());
    for (int64_t j = 0; j < 300; ++j)
      ASSERT_NEAR(row[size_t(j)], tm.dense[size_t((127 + i) * 300 + j)],
                  1e-6 * std::fabs(tm.dense[size_t((127 + i) * 300 + j)]))
          << i << " " << j;
  }
}

TEST(Matmul, EmptyTokenBatchWritesNothing) {
  Rng rng(23);
  const TestMatrix tm = make_matrix(DType::F32, 8, 16, rng);
  std::vector<float> X(16, 1.0f), Y(16, kPad);
  matmul(tm.m, X.data(), 0, 16, Y.data(), 8);
  matmul_transposed(tm.m, X.data(), 0, 8, Y.data(), 16);
  for (float v : Y) EXPECT_EQ(v, kPad);
}

}  // namespace
}  // namespace whale
