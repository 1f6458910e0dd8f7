// Matmul kernels on every ISA level this CPU has (others are skipped with a message), both
// precisions, every weight type, odd shapes, on a multi-threaded pool:
//  - Exact: against the reference "dequantize each row, dot in double" (float rounding only).
//  - Fast: against the same reference with a per-format tolerance for 8-bit activations, and
//    against the portable fast kernels (same integer sums: float rounding only).
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/matmul.h"
#include "kernels/qkernels.h"
#include "kernels/quants.h"

namespace whale {
namespace {

struct Weights {
  DType dtype;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  Matrix m() const {
    Matrix w;
    w.dtype = dtype;
    w.rows = rows;
    w.cols = cols;
    w.data = bytes.data();
    w.row_bytes = *dtype_bytes(dtype, uint64_t(cols));
    return w;
  }
};

// Random weights: mostly uniform, some rows scaled, a few outliers (exercise the scales).
Weights make_weights(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> row(static_cast<size_t>(cols));
  Weights w{t, rows, cols, {}};
  const uint64_t rb = *dtype_bytes(t, uint64_t(cols));
  w.bytes.resize(rb * uint64_t(rows) + 1);
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = (r % 3 == 0) ? 0.05f : 1.0f;
    for (auto& v : row) v = u(rng) * scale;
    if (cols > 8) row[size_t(r % cols)] *= 6.f;
    quantize_row(t, row.data(), w.bytes.data() + rb * uint64_t(r), cols);
  }
  return w;
}

std::vector<float> make_acts(int64_t n_tok, int64_t ldx, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(size_t(n_tok * ldx));
  for (auto& v : x) v = g(rng);
  return x;
}

// Reference: every row dequantized by the scalar reference, dot products in double.
// norms[t * rows + r] = |W[r]| * |X[t]|, the largest a dot product can be (Cauchy-Schwarz):
// the scale that 8-bit activation errors are measured against.
std::vector<float> reference(const Weights& w, const std::vector<float>& x, int64_t n_tok, int64_t ldx,
                             std::vector<double>* norms) {
  std::vector<float> y(size_t(n_tok * w.rows)), row(size_t(w.cols));
  norms->assign(y.size(), 0.0);
  const Matrix m = w.m();
  for (int64_t r = 0; r < w.rows; ++r) {
    m.dequantize_row(r, row.data());
    double ww = 0;
    for (float v : row) ww += double(v) * v;
    for (int64_t t = 0; t < n_tok; ++t) {
      double s = 0, xx = 0;
      for (int64_t j = 0; j < w.cols; ++j) {
        s += double(row[size_t(j)]) * x[size_t(t * ldx + j)];
        xx += double(x[size_t(t * ldx + j)]) * x[size_t(t * ldx + j)];
      }
      y[size_t(t * w.rows + r)] = float(s);
      (*norms)[size_t(t * w.rows + r)] = std::sqrt(ww * xx);
    }
  }
  return y;
}

// max |a - b| / norm, element by element
double norm_err(const std::vector<float>& a, const std::vector<float>& b, const std::vector<double>& norms) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (norms[i] > 0) e = std::max(e, std::fabs(double(a[i]) - double(b[i])) / norms[i]);
  return e;
}

// max |a - b| / max |b|
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e = std::max(e, double(std::fabs(a[i] - b[i])));
    m = std::max(m, double(std::fabs(b[i])));
  }
  return m > 0 ? e / m : e;
}

// Runs matmul with the given level and precision; ldy > rows to check strides.
std::vector<float> run(const Weights& w, const std::vector<float>& x, int64_t n_tok, int64_t ldx,
                       IsaLevel isa, MatmulPrecision p) {
  set_isa_level(isa);
  set_matmul_precision(p);
  const int64_t ldy = w.rows + 3;
  std::vector<float> y(size_t(n_tok * ldy), -7.f);
  matmul(w.m(), x.data(), n_tok, ldx, y.data(), ldy);
  std::vector<float> out(size_t(n_tok * w.rows));
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t r = 0; r < w.rows; ++r) out[size_t(t * w.rows + r)] = y[size_t(t * ldy + r)];
  for (int64_t t = 0; t < n_tok; ++t)  // the padding between rows of Y is untouched
    for (int64_t r = w.rows; r < ldy; ++r) EXPECT_EQ(y[size_t(t * ldy + r)], -7.f);
  return out;
}

struct FormatCase {
  DType dtype;
  std::vector<int64_t> cols;  // multiples of the block size
  // 8-bit activations vs reference, max error / (|w| |x|). Each activation is off by at most
  // amax/254 of its block, so the bound is about sqrt(block) * amax / (254 |x_block|): ~1e-2
  // for blocks of 32, less for 256; random data stays well inside.
  double fast_tol;
};

void PrintTo(const FormatCase& c, std::ostream* os) { *os << dtype_name(c.dtype); }

const std::vector<FormatCase>& formats() {
  static const std::vector<FormatCase> f = {
      {DType::F32, {1, 7, 33, 100, 256}, 0},   {DType::F16, {3, 8, 17, 64, 300}, 0},
      {DType::BF16, {5, 16, 31, 96, 512}, 0},  {DType::Q8_0, {32, 96, 288, 544, 1056}, 1e-2},
      {DType::Q4_0, {32, 96, 288, 544, 1056}, 1e-2}, {DType::Q4_K, {256, 512, 768, 2304}, 5e-3},
      {DType::Q5_K, {256, 512, 768, 2304}, 5e-3},    {DType::Q6_K, {256, 512, 768, 2304}, 5e-3},
      {DType::Q4_1, {32, 96, 288, 544, 1056}, 1e-2}, {DType::Q5_0, {32, 96, 288, 544, 1056}, 1e-2},
      {DType::Q5_1, {32, 96, 288, 544, 1056}, 1e-2},
  };
  return f;
}

// The fast path's weight types: blocks of 32 and K-quant super-blocks.
constexpr DType kFastTypes[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_0,
                                DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1};

bool quantized_fast(DType t) { return std::find(std::begin(kFastTypes), std::end(kFastTypes), t) != std::end(kFastTypes); }
bool block32(DType t) { return quantized_fast(t) && dtype_info(t).block_elems == 32; }

class KernelTest : public testing::TestWithParam<std::tuple<IsaLevel, FormatCase>> {
 protected:
  void SetUp() override {
    const IsaLevel l = std::get<0>(GetParam());
    if (int(l) > int(best_isa_level()))
      GTEST_SKIP() << "this CPU has no " << isa_name(l) << " (best: " << isa_name(best_isa_level()) << ")";
  }
  void TearDown() override {
    set_isa_level(best_isa_level());
    set_matmul_precision(MatmulPrecision::Fast);
  }
};

TEST_P(KernelTest, MatchesReferenceOnOddShapes) {
  const IsaLevel isa = std::get<0>(GetParam());
  const FormatCase& fc = std::get<1>(GetParam());
  double worst_exact = 0, worst_fast = 0, worst_vs_portable = 0;
  uint32_t seed = 1;
  for (int64_t cols : fc.cols)
    for (int64_t rows : {1, 3, 4, 5, 8, 13, 37})
      for (int64_t n_tok : {1, 2, 3, 5, 7, 8, 17, 33}) {
        if (rows * n_tok > 37 * 17 && cols > 256) continue;  // keep the suite quick
        // float rounding of sums of cols terms grows like sqrt(cols)
        const double float_tol = 5e-6 * std::max(1.0, std::sqrt(double(cols) / 768));
        const Weights w = make_weights(fc.dtype, rows, cols, seed++);
        const int64_t ldx = cols + 5;
        const std::vector<float> x = make_acts(n_tok, ldx, seed++);
        std::vector<double> norms;
        const std::vector<float> ref = reference(w, x, n_tok, ldx, &norms);
        const std::vector<float> exact = run(w, x, n_tok, ldx, isa, MatmulPrecision::Exact);
        const double e = rel_err(exact, ref);
        worst_exact = std::max(worst_exact, e);
        ASSERT_LE(e, float_tol) << "exact, rows " << rows << " cols " << cols << " n_tok " << n_tok;
        if (!quantized_fast(fc.dtype)) continue;
        const std::vector<float> fast = run(w, x, n_tok, ldx, isa, MatmulPrecision::Fast);
        const std::vector<float> portable = run(w, x, n_tok, ldx, IsaLevel::Portable, MatmulPrecision::Fast);
        const double ef = norm_err(fast, ref, norms), ep = rel_err(fast, portable);
        worst_fast = std::max(worst_fast, ef);
        worst_vs_portable = std::max(worst_vs_portable, ep);
        ASSERT_LE(ef, fc.fast_tol) << "fast, rows " << rows << " cols " << cols << " n_tok " << n_tok;
        ASSERT_LE(ep, float_tol) << "fast vs portable, rows " << rows << " cols " << cols << " n_tok " << n_tok;
      }
  std::printf("[%s %s] worst rel err: exact %.2g, fast %.2g, fast vs portable %.2g\n", isa_name(isa),
              dtype_name(fc.dtype), worst_exact, worst_fast, worst_vs_portable);
}

std::string case_name(const testing::TestParamInfo<KernelTest::ParamType>& info) {
  return std::string(isa_name(std::get<0>(info.param))) + "_" + dtype_name(std::get<1>(info.param).dtype);
}

INSTANTIATE_TEST_SUITE_P(All, KernelTest,
                         testing::Combine(testing::Values(IsaLevel::Portable, IsaLevel::Avx2, IsaLevel::Avx512),
                                          testing::ValuesIn(formats())),
                         case_name);

// A token's result does not depend on the other tokens of the call: one matmul of n tokens
// equals n matmuls of one token (the decode kernels) and a matmul of a sub-range, bit for bit,
// for every fast weight type and ISA level. K spans several chunks of the GEMM tiles (9
// super-blocks, 33 blocks of 32) and the rows end in a partial tile. The wide shape is past
// the decode kernels' 8-row path (more than 32768 / 20480 columns), which then goes row by row.
TEST(Kernels, FastResultsDoNotDependOnTheBatch) {
  for (IsaLevel isa : {IsaLevel::Portable, IsaLevel::Avx2, IsaLevel::Avx512}) {
    if (int(isa) > int(best_isa_level())) continue;
    set_isa_level(isa);
    for (DType t : kFastTypes) {
      for (bool wide : {false, true}) {
        const bool b32 = block32(t);
        const int64_t rows = wide ? 9 : 37, cols = wide ? (b32 ? 20512 : 33024) : (b32 ? 1056 : 2304),
                      n = wide ? 8 : 11;
        const Weights w = make_weights(t, rows, cols, 21);
        const std::vector<float> x = make_acts(n, cols, 22);
        std::vector<float> all(static_cast<size_t>(n * rows)), one(static_cast<size_t>(rows)),
            part(static_cast<size_t>(5 * rows));
        matmul(w.m(), x.data(), n, cols, all.data(), rows);
        for (int64_t k = 0; k < n; ++k) {
          matmul(w.m(), x.data() + k * cols, 1, cols, one.data(), rows);
          EXPECT_EQ(std::memcmp(one.data(), all.data() + k * rows, sizeof(float) * size_t(rows)), 0)
              << isa_name(isa) << " " << dtype_name(t) << " cols " << cols << " token " << k << " alone";
        }
        matmul(w.m(), x.data() + 3 * cols, 5, cols, part.data(), rows);
        EXPECT_EQ(std::memcmp(part.data(), all.data() + 3 * rows, sizeof(float) * part.size()), 0)
            << isa_name(isa) << " " << dtype_name(t) << " cols " << cols << " tokens 3..7";
      }
    }
  }
  set_isa_level(best_isa_level());
}

#if WHALE_TEST_VNNI_EMULATION
}  // namespace
namespace kern {
const KernelSet& kernels_vnni_emulated();  // tests/vnni_emulation_kernels.cpp
}  // namespace kern
namespace {

// The VNNI variants of the AVX-512 level (vpdpbusd emulated on AVX2) give the AVX2 kernels'
// results bit for bit: same integer sums, same float steps. Batches 1 (decode kernels) to 9
// (GEMM sweeps of 4, 2, 1), rows ending in a partial tile, K over several tile chunks.
TEST(Kernels, VnniVariantsMatchAvx2UnderEmulation) {
  if (int(best_isa_level()) < int(IsaLevel::Avx2)) GTEST_SKIP() << "this CPU has no AVX2";
  for (DType t : kFastTypes) {
    const bool b32 = block32(t);
    const int64_t rows = 19, cols = b32 ? 1088 : 2304;  // 34 blocks of 32 / 9 super-blocks
    const Weights w = make_weights(t, rows, cols, 31);
    for (int64_t n = 1; n <= 9; ++n) {
      const std::vector<float> x = make_acts(n, cols, uint32_t(40 + n));
      std::vector<kern::ActQ8B> xb(size_t(n * cols / kern::kQ32));
      std::vector<kern::ActQ8K> xk(size_t(n * cols / kern::kQK));
      for (int64_t i = 0; i < n; ++i) {
        if (b32) kern::quantize_act_q8B(x.data() + i * cols, xb.data() + i * cols / kern::kQ32, cols);
        else kern::quantize_act_q8K(x.data() + i * cols, xk.data() + i * cols / kern::kQK, cols);
      }
      std::vector<float> y_avx2(size_t(n * rows)), y_vnni(size_t(n * rows));
      kern::GemmArgs a{.wtype = t, .w = w.bytes.data(), .w_row_bytes = *dtype_bytes(t, uint64_t(cols)),
                       .cols = cols, .n_tok = n, .x = x.data(), .ldx = cols,
                       .xq = b32 ? reinterpret_cast<const uint8_t*>(xb.data()) : reinterpret_cast<const uint8_t*>(xk.data()),
                       .xq_stride = b32 ? size_t(cols / kern::kQ32) * sizeof(kern::ActQ8B)
                                        : size_t(cols / kern::kQK) * sizeof(kern::ActQ8K),
                       .y = y_avx2.data(), .ldy = rows};
      kern::kernels_avx2().gemm_fast(a, 0, rows);
      a.y = y_vnni.data();
      kern::kernels_vnni_emulated().gemm_fast(a, 0, rows);
      EXPECT_EQ(std::memcmp(y_avx2.data(), y_vnni.data(), sizeof(float) * y_avx2.size()), 0)
          << dtype_name(t) << " n_tok " << n;
    }
  }
}
#endif

TEST(Kernels, NonFiniteActivationsGiveNaNNotGarbage) {
  const Weights w = make_weights(DType::Q4_K, 5, 256, 3);
  for (IsaLevel isa : {IsaLevel::Portable, IsaLevel::Avx2, IsaLevel::Avx512}) {
    if (int(isa) > int(best_isa_level())) continue;
    std::vector<float> x = make_acts(2, 256, 4);
    x[10] = INFINITY;
    const std::vector<float> y = run(w, x, 2, 256, isa, MatmulPrecision::Fast);
    for (int64_t r = 0; r < 5; ++r) {
      EXPECT_TRUE(std::isnan(y[size_t(r)])) << isa_name(isa) << " row " << r;
      EXPECT_TRUE(std::isfinite(y[size_t(5 + r)])) << isa_name(isa) << " row " << r;
    }
  }
  set_isa_level(best_isa_level());
  set_matmul_precision(MatmulPrecision::Fast);
}

// The Q8_K activation quantizer's block-maximum search has an AVX2 version: it must give the
// same bits as the scalar one, ties of equal magnitude and opposite sign (the first one wins)
// and zero / non-finite blocks included.
TEST(Kernels, ActivationQuantizerIsTheSameAtEveryLevel) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.f, 3.f);
  std::vector<float> x(256 * 12);
  for (auto& v : x) v = nd(rng);
  x[256 + 7] = 50.f, x[256 + 200] = -50.f;     // tie: +50 first
  x[512 + 9] = -60.f, x[512 + 100] = 60.f;     // tie: -60 first
  x[768 + 255] = 99.f;                         // maximum in the last lane
  std::fill(x.begin() + 1024, x.begin() + 1280, 0.f);
  x[1024 + 3] = -0.f;
  x[1280 + 17] = NAN;
  x[1536 + 250] = -INFINITY;
  x[1792 + 1] = 1e-40f;                        // denormals only
  std::fill(x.begin() + 1792 + 2, x.begin() + 2048, 0.f);
  std::vector<kern::ActQ8K> want(12), got(12);
  set_isa_level(IsaLevel::Portable);
  kern::quantize_act_q8K(x.data(), want.data(), int64_t(x.size()));
  for (IsaLevel isa : {IsaLevel::Avx2, IsaLevel::Avx512}) {
    if (int(isa) > int(best_isa_level())) continue;
    set_isa_level(isa);
    kern::quantize_act_q8K(x.data(), got.data(), int64_t(x.size()));
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(kern::ActQ8K))) << isa_name(isa);
  }
  set_isa_level(best_isa_level());
  // The first of a tie decides the scale (d = -max / 127, as ggml's quantize_row_q8_K).
  EXPECT_FLOAT_EQ(want[1].d, -50.f / 127.f);
  EXPECT_FLOAT_EQ(want[2].d, 60.f / 127.f);
  EXPECT_FLOAT_EQ(want[3].d, -99.f / 127.f);
  EXPECT_TRUE(std::isnan(want[5].d));
  EXPECT_TRUE(std::isnan(want[6].d));
}

// matmul2 (gate and up in one pass) equals two matmul calls, bit for bit, for pairs of the
// same and of different activation formats, in both precisions.
TEST(Kernels, Matmul2EqualsTwoMatmuls) {
  const int64_t cols = 512, n_tok = 5;
  const std::vector<float> x = make_acts(n_tok, cols, 9);
  const std::vector<std::pair<DType, DType>> pairs = {
      {DType::Q4_K, DType::Q4_K}, {DType::Q4_K, DType::Q6_K}, {DType::Q8_0, DType::Q5_K}, {DType::BF16, DType::Q4_0}};
  for (MatmulPrecision p : {MatmulPrecision::Exact, MatmulPrecision::Fast})
    for (auto [t1, t2] : pairs) {
      set_matmul_precision(p);
      const Weights w1 = make_weights(t1, 13, cols, 10), w2 = make_weights(t2, 7, cols, 11);
      std::vector<float> a1(size_t(n_tok * 13)), a2(size_t(n_tok * 7)), b1(a1.size()), b2(a2.size());
      matmul(w1.m(), x.data(), n_tok, cols, a1.data(), 13);
      matmul(w2.m(), x.data(), n_tok, cols, a2.data(), 7);
      matmul2(w1.m(), b1.data(), 13, w2.m(), b2.data(), 7, x.data(), n_tok, cols);
      EXPECT_EQ(a1, b1) << dtype_name(t1) << "+" << dtype_name(t2) << " " << precision_name(p);
      EXPECT_EQ(a2, b2) << dtype_name(t1) << "+" << dtype_name(t2) << " " << precision_name(p);
    }
  set_matmul_precision(MatmulPrecision::Fast);
}

// matmul_batch: jobs of different shapes, types, token counts and activations (pairs sharing
// one X, as an MoE run's gate/up jobs do) give each job's own matmul result, bit for bit, on
// the suite's 3-thread pool, in both precisions.
TEST(Kernels, MatmulBatchEqualsOneMatmulPerJob) {
  struct Spec {
    DType t;
    int64_t rows, cols, n_tok;
    bool same_x_as_previous;
  };
  const std::vector<Spec> specs = {{DType::Q4_K, 13, 512, 5, false}, {DType::Q6_K, 21, 512, 5, true},
                                   {DType::Q8_0, 9, 1088, 1, false}, {DType::Q4_0, 40, 1088, 1, true},
                                   {DType::BF16, 7, 96, 3, false},   {DType::Q5_K, 3, 256, 17, false},
                                   {DType::Q8_0, 16, 256, 17, true}, {DType::Q5_0, 11, 1408, 1, false},
                                   {DType::Q5_1, 9, 1408, 1, true},  {DType::Q4_1, 17, 288, 6, false}};
  for (MatmulPrecision p : {MatmulPrecision::Exact, MatmulPrecision::Fast}) {
    set_matmul_precision(p);
    std::vector<Weights> w;
    std::vector<std::vector<float>> xs, want, got;
    std::vector<Matrix> m;
    for (size_t i = 0; i < specs.size(); ++i) {
      const Spec& s = specs[i];
      w.push_back(make_weights(s.t, s.rows, s.cols, uint32_t(60 + i)));
      xs.push_back(s.same_x_as_previous ? xs.back() : make_acts(s.n_tok, s.cols + 3, uint32_t(80 + i)));
      want.emplace_back(size_t(s.n_tok * (s.rows + 2)), -5.f);
      got.emplace_back(size_t(s.n_tok * (s.rows + 2)), -5.f);
    }
    for (const Weights& wi : w) m.push_back(wi.m());
    std::vector<MatmulJob> jobs;
    for (size_t i = 0; i < specs.size(); ++i) {
      const Spec& s = specs[i];
      const float* x = s.same_x_as_previous ? jobs.back().X : xs[i].data();
      matmul(m[i], x, s.n_tok, s.cols + 3, want[i].data(), s.rows + 2);
      jobs.push_back({&m[i], x, s.n_tok, s.cols + 3, got[i].data(), s.rows + 2});
    }
    matmul_batch(jobs);
    for (size_t i = 0; i < specs.size(); ++i)
      EXPECT_EQ(want[i], got[i]) << "job " << i << " " << dtype_name(specs[i].t) << " " << precision_name(p);
  }
  set_matmul_precision(MatmulPrecision::Fast);
}

TEST(Kernels, IsaLevelsAndNames) {
  for (IsaLevel l : {IsaLevel::Portable, IsaLevel::Avx2, IsaLevel::Avx512})
    EXPECT_EQ(isa_from_name(isa_name(l)), l);
  EXPECT_FALSE(isa_from_name("sse9"));
  EXPECT_EQ(precision_from_name("exact"), MatmulPrecision::Exact);
  EXPECT_EQ(precision_from_name("fast"), MatmulPrecision::Fast);
  EXPECT_FALSE(precision_from_name("quick"));
  if (best_isa_level() != IsaLevel::Avx512) {
    EXPECT_THROW(set_isa_level(IsaLevel::Avx512), Error);
  }
  set_isa_level(IsaLevel::Portable);
  EXPECT_EQ(isa_level(), IsaLevel::Portable);
  set_isa_level(best_isa_level());
  const CpuFeatures& f = cpu_features();
  std::printf("cpu: avx2 %d fma %d f16c %d avx512f %d bw %d vl %d vnni %d bf16 %d amx %d; best %s\n", f.avx2, f.fma,
              f.f16c, f.avx512f, f.avx512bw, f.avx512vl, f.avx512vnni, f.avx512bf16, f.amx_tile,
              isa_name(best_isa_level()));
}

// More threads than this machine's cores, so chunks interleave differently from the default.
class ThreeThreads : public testing::Environment {
 public:
  void SetUp() override { ThreadPool::set_default_threads(3); }
};
const auto* const kEnv = testing::AddGlobalTestEnvironment(new ThreeThreads);

}  // namespace
}  // namespace whale
