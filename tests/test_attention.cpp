// Attention kernels (src/kernels/attention.*) against a straightforward reference: full
// softmax per query in double, causal by position. Random data; MLA and GQA shapes, widths
// that are and are not multiples of the SIMD width, lengths 1..300, the cache cut into blocks
// several ways (one block, odd splits, 16-row pages copied to separate buffers), both the
// SIMD and the portable inner loops, and the block-by-block state API.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/attention.h"

namespace whale {
namespace {

struct Case {
  int64_t n_tok, n_head, n_kv_head, dk, dv, T;  // T: cache rows; queries at positions T-n_tok..T-1
  bool mla;                                     // v = first dv floats of the k row
};

struct Data {
  std::vector<float> q, kv, v;  // kv rows: [T, row]; v rows (GQA): [T, Hkv * dv]
  std::vector<int32_t> pos;
  int64_t k_row = 0, v_row = 0;
};

Data make_data(const Case& c, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Data d;
  d.k_row = c.mla ? c.dk : c.n_kv_head * c.dk;
  d.v_row = c.mla ? c.dk : c.n_kv_head * c.dv;
  d.q.resize(size_t(c.n_tok * c.n_head * c.dk));
  d.kv.resize(size_t(c.T * d.k_row));
  d.v.resize(c.mla ? 0 : size_t(c.T * d.v_row));
  for (auto* vec : {&d.q, &d.kv, &d.v})
    for (float& x : *vec) x = nd(rng);
  for (int64_t t = 0; t < c.n_tok; ++t) d.pos.push_back(int32_t(c.T - c.n_tok + t));
  return d;
}

// out[t, h, dv]
std::vector<float> reference(const Case& c, const Data& d, float scale) {
  const int64_t G = c.n_head / c.n_kv_head;
  std::vector<float> out(size_t(c.n_tok * c.n_head * c.dv));
  for (int64_t t = 0; t < c.n_tok; ++t)
    for (int64_t h = 0; h < c.n_head; ++h) {
      const int64_t g = h / G, len = d.pos[size_t(t)] + 1;
      const float* q = &d.q[size_t((t * c.n_head + h) * c.dk)];
      std::vector<double> s(static_cast<size_t>(len));
      for (int64_t u = 0; u < len; ++u) {
        const float* k = &d.kv[size_t(u * d.k_row + (c.mla ? 0 : g * c.dk))];
        double acc = 0;
        for (int64_t j = 0; j < c.dk; ++j) acc += double(q[j]) * double(k[j]);
        s[size_t(u)] = acc * scale;
      }
      const double mx = *std::max_element(s.begin(), s.end());
      double sum = 0;
      for (double& x : s) sum += x = std::exp(x - mx);
      for (int64_t j = 0; j < c.dv; ++j) {
        double acc = 0;
        for (int64_t u = 0; u < len; ++u) {
          const float* v = c.mla ? &d.kv[size_t(u * d.k_row)] : &d.v[size_t(u * d.v_row + g * c.dv)];
          acc += s[size_t(u)] * double(v[j]);
        }
        out[size_t((t * c.n_head + h) * c.dv + j)] = float(acc / sum);
      }
    }
  return out;
}

AttnParams params(const Case& c, const Data& d, float scale, float* out) {
  return AttnParams{.n_tok = c.n_tok, .n_head = c.n_head, .n_kv_head = c.n_kv_head, .dk = c.dk,
                    .dv = c.dv, .k_head_offset = c.mla ? 0 : c.dk, .v_head_offset = c.mla ? 0 : c.dv,
                    .q = d.q.data(), .q_tok_stride = c.n_head * c.dk, .q_head_stride = c.dk,
                    .pos = d.pos.data(), .scale = scale,
                    .out = out, .o_tok_stride = c.n_head * c.dv, .o_head_stride = c.dv};
}

// The cache cut at `cuts` (row indices), each block copied to its own buffer with a padded
// row stride, as pages of a paged cache would be.
struct Paged {
  std::vector<std::vector<float>> kbuf, vbuf;
  std::vector<KvBlock> blocks;
};

Paged paginate(const Case& c, const Data& d, std::vector<int64_t> cuts, bool copy) {
  Paged pg;
  cuts.insert(cuts.begin(), 0);
  cuts.push_back(c.T);
  const int64_t pad = 3;  // strides that are not the row width
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    const int64_t r0 = cuts[i], rows = cuts[i + 1] - cuts[i];
    if (rows <= 0) continue;
    KvBlock b{.rows = rows, .pos0 = r0};
    if (!copy) {
      b.k = &d.kv[size_t(r0 * d.k_row)];
      b.v = c.mla ? b.k : &d.v[size_t(r0 * d.v_row)];
      b.k_stride = d.k_row;
      b.v_stride = d.v_row;
    } else {
      auto& kb = pg.kbuf.emplace_back(size_t(rows * (d.k_row + pad)));
      for (int64_t r = 0; r < rows; ++r)
        std::copy_n(&d.kv[size_t((r0 + r) * d.k_row)], d.k_row, &kb[size_t(r * (d.k_row + pad))]);
      b.k = kb.data();
      b.k_stride = d.k_row + pad;
      if (c.mla) {
        b.v = b.k;
        b.v_stride = b.k_stride;
      } else {
        auto& vb = pg.vbuf.emplace_back(size_t(rows * (d.v_row + pad)));
        for (int64_t r = 0; r < rows; ++r)
          std::copy_n(&d.v[size_t((r0 + r) * d.v_row)], d.v_row, &vb[size_t(r * (d.v_row + pad))]);
        b.v = vb.data();
        b.v_stride = d.v_row + pad;
      }
    }
    pg.blocks.push_back(b);
  }
  return pg;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

std::vector<std::vector<int64_t>> splits(int64_t T, std::mt19937& rng) {
  std::vector<std::vector<int64_t>> out = {{}};
  if (T > 1) out.push_back({1});
  if (T > 2) out.push_back({T / 3, T - 1});
  std::vector<int64_t> pages;
  for (int64_t r = 16; r < T; r += 16) pages.push_back(r);
  out.push_back(pages);
  std::vector<int64_t> rnd;
  for (int64_t r = 1; r < T; r += 1 + int64_t(rng() % 70)) rnd.push_back(r);
  out.push_back(rnd);
  return out;
}

class AttentionTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { force_portable_attention(GetParam()); }
  void TearDown() override { force_portable_attention(false); }
};

void run_case(const Case& c, std::mt19937& rng, double* worst) {
  const Data d = make_data(c, rng);
  const float scale = 1.0f / std::sqrt(float(c.dk));
  const std::vector<float> want = reference(c, d, scale);
  for (const auto& cuts : splits(c.T, rng))
    for (bool copy : {false, true}) {
      const Paged pg = paginate(c, d, cuts, copy);
      std::vector<float> got(want.size(), std::nanf(""));
      attention(params(c, d, scale, got.data()), pg.blocks);
      const double err = max_abs_diff(got, want);
      *worst = std::max(*worst, err);
      ASSERT_LT(err, 2e-5) << "T " << c.T << " n_tok " << c.n_tok << " H " << c.n_head << "/" << c.n_kv_head
                           << " dk " << c.dk << " dv " << c.dv << " blocks " << pg.blocks.size();
    }
}

TEST_P(AttentionTest, MlaMatchesReference) {
  std::mt19937 rng(1);
  double worst = 0;
  for (int64_t T : {1, 2, 7, 63, 64, 65, 130, 300})
    for (int64_t n_tok : {int64_t(1), std::min<int64_t>(T, 5), T}) {
      run_case({.n_tok = n_tok, .n_head = 16, .n_kv_head = 1, .dk = 64 + 16, .dv = 64, .T = T, .mla = true}, rng, &worst);
      run_case({.n_tok = n_tok, .n_head = 3, .n_kv_head = 1, .dk = 36 + 5, .dv = 36, .T = T, .mla = true}, rng, &worst);
    }
  RecordProperty("worst_abs_err", std::to_string(worst));
  std::printf("MLA worst |err| %.3g (%s)\n", worst, attention_isa());
}

TEST_P(AttentionTest, GqaMatchesReference) {
  std::mt19937 rng(2);
  double worst = 0;
  for (int64_t T : {1, 3, 17, 64, 100, 300})
    for (int64_t n_tok : {int64_t(1), std::min<int64_t>(T, 4), T}) {
      run_case({.n_tok = n_tok, .n_head = 6, .n_kv_head = 2, .dk = 32, .dv = 32, .T = T, .mla = false}, rng, &worst);
      run_case({.n_tok = n_tok, .n_head = 5, .n_kv_head = 5, .dk = 20, .dv = 12, .T = T, .mla = false}, rng, &worst);
    }
  std::printf("GQA worst |err| %.3g (%s)\n", worst, attention_isa());
}

// Long caches are split into row segments (split-K, merged afterwards): lengths around the
// segment boundaries and past the segment cap, decode and a few prefill tokens, MLA and GQA.
TEST_P(AttentionTest, LongCacheSegmentsMatchReference) {
  std::mt19937 rng(5);
  double worst = 0;
  for (int64_t T : {512, 513, 1100, 4700})
    for (int64_t n_tok : {1, 3}) {
      run_case({.n_tok = n_tok, .n_head = 4, .n_kv_head = 1, .dk = 16 + 8, .dv = 16, .T = T, .mla = true}, rng, &worst);
      run_case({.n_tok = n_tok, .n_head = 6, .n_kv_head = 2, .dk = 12, .dv = 12, .T = T, .mla = false}, rng, &worst);
    }
  // A sharp softmax across segments: the merge rescales by each segment's own max.
  const Case c{.n_tok = 2, .n_head = 4, .n_kv_head = 1, .dk = 24, .dv = 16, .T = 1500, .mla = true};
  const Data d = make_data(c, rng);
  const std::vector<float> want = reference(c, d, 25.0f);
  std::vector<float> got(want.size());
  const Paged pg = paginate(c, d, {700}, false);
  attention(params(c, d, 25.0f, got.data()), pg.blocks);
  EXPECT_LT(max_abs_diff(got, want), 1e-4);
  std::printf("long-cache worst |err| %.3g (%s)\n", worst, attention_isa());
}

// f16 cache rows (widened as they are loaded): against the reference on the same rounded
// values (the kernel itself adds no error beyond f32 arithmetic), and against the unrounded
// f32 data within the rounding of f16 (11 significant bits); short and segmented lengths,
// MLA (v = k row) and GQA, paged and flat.
TEST_P(AttentionTest, F16RowsMatchReference) {
  std::mt19937 rng(7);
  double worst_same = 0, worst_vs_f32 = 0;
  for (int64_t T : {1, 65, 300, 1100})
    for (bool mla : {true, false}) {
      const Case c = mla ? Case{.n_tok = 3, .n_head = 16, .n_kv_head = 1, .dk = 64 + 16, .dv = 64, .T = T, .mla = true}
                         : Case{.n_tok = 3, .n_head = 6, .n_kv_head = 2, .dk = 36, .dv = 36, .T = T, .mla = false};
      Case cc = c;
      cc.n_tok = std::min<int64_t>(c.n_tok, T);
      const Data d = make_data(cc, rng);
      Data r = d;  // the values an f16 cache holds
      std::vector<uint16_t> k16, v16;
      for (float& x : r.kv) k16.push_back(f32_to_f16(x)), x = f16_to_f32(k16.back());
      for (float& x : r.v) v16.push_back(f32_to_f16(x)), x = f16_to_f32(v16.back());
      const float scale = 1.0f / std::sqrt(float(cc.dk));
      const std::vector<float> want_same = reference(cc, r, scale), want_f32 = reference(cc, d, scale);
      for (int64_t page : {int64_t(0), int64_t(16)}) {
        std::vector<KvBlock> blocks;
        for (int64_t r0 = 0; r0 < T; r0 += page > 0 ? page : T) {
          const int64_t rows = std::min(page > 0 ? page : T, T - r0);
          const uint16_t* kp = k16.data() + r0 * r.k_row;
          const uint16_t* vp = mla ? kp : v16.data() + r0 * r.v_row;
          blocks.push_back({.k = kp, .v = vp, .rows = rows, .k_stride = r.k_row, .v_stride = r.v_row,
                            .pos0 = r0, .type = DType::F16});
        }
        std::vector<float> got(want_same.size(), std::nanf(""));
        attention(params(cc, r, scale, got.data()), blocks);
        worst_same = std::max(worst_same, max_abs_diff(got, want_same));
        worst_vs_f32 = std::max(worst_vs_f32, max_abs_diff(got, want_f32));
        ASSERT_LT(max_abs_diff(got, want_same), 2e-5) << "T " << T << " mla " << mla << " page " << page;
        ASSERT_LT(max_abs_diff(got, want_f32), 5e-3) << "T " << T << " mla " << mla << " page " << page;
      }
    }
  EXPECT_GT(worst_vs_f32, 0.0);  // the rows really were rounded
  std::printf("f16 rows: worst |err| %.3g vs reference on the same values, %.3g vs f32 data (%s)\n",
              worst_same, worst_vs_f32, attention_isa());
}

// A token's output is the same bits alone or inside a batch of tokens (the segment cut depends
// on its own position only): the scheduler relies on it (concurrent = sequential).
TEST_P(AttentionTest, TokenResultIndependentOfBatch) {
  std::mt19937 rng(6);
  for (int64_t T : {300, 2000}) {
    const Case c{.n_tok = 4, .n_head = 8, .n_kv_head = 1, .dk = 40, .dv = 32, .T = T, .mla = true};
    const Data d = make_data(c, rng);
    const Paged pg = paginate(c, d, {T / 3, T / 3 + 16}, true);
    std::vector<float> batch(size_t(c.n_tok * c.n_head * c.dv));
    attention(params(c, d, 0.2f, batch.data()), pg.blocks);
    for (int64_t t = 0; t < c.n_tok; ++t) {
      AttnParams p = params(c, d, 0.2f, nullptr);
      std::vector<float> one(size_t(c.n_head * c.dv));
      p.n_tok = 1, p.q = d.q.data() + t * c.n_head * c.dk, p.pos = d.pos.data() + t, p.out = one.data();
      attention(p, pg.blocks);
      for (size_t j = 0; j < one.size(); ++j)
        ASSERT_EQ(one[j], batch[size_t(t * c.n_head * c.dv) + j]) << "T " << T << " token " << t;
    }
  }
}

// Driving the state API block by block (as a paged cache walker would) gives the same result.
TEST_P(AttentionTest, BlockByBlockState) {
  std::mt19937 rng(3);
  const Case c{.n_tok = 3, .n_head = 8, .n_kv_head = 2, .dk = 24, .dv = 16, .T = 150, .mla = false};
  const Data d = make_data(c, rng);
  const float scale = 0.3f;
  const std::vector<float> want = reference(c, d, scale);
  const Paged pg = paginate(c, d, {40, 41, 100}, true);
  std::vector<float> got(want.size());
  const AttnParams p = params(c, d, scale, got.data());
  const int64_t G = c.n_head / c.n_kv_head;
  for (int64_t t = 0; t < c.n_tok; ++t)
    for (int64_t h0 = 0; h0 < c.n_head; h0 += G) {
      std::vector<float> m(static_cast<size_t>(G)), l(static_cast<size_t>(G));
      std::vector<float*> acc;
      for (int64_t i = 0; i < G; ++i) acc.push_back(&got[size_t((t * c.n_head + h0 + i) * c.dv)]);
      const SoftmaxState st{m.data(), l.data(), acc.data()};
      attn_state_init(st, G, c.dv);
      for (const KvBlock& b : pg.blocks) attn_block(p, t, h0, G, b, st);
      attn_state_finish(st, G, c.dv);
    }
  EXPECT_LT(max_abs_diff(got, want), 2e-5);
}

// Large logits (sharp softmax) stay finite and exact: the online max protects exp.
TEST_P(AttentionTest, LargeScoresStable) {
  std::mt19937 rng(4);
  const Case c{.n_tok = 2, .n_head = 4, .n_kv_head = 1, .dk = 40, .dv = 32, .T = 200, .mla = true};
  const Data d = make_data(c, rng);
  const float scale = 30.0f;
  const std::vector<float> want = reference(c, d, scale);
  const Paged pg = paginate(c, d, {10, 70, 71}, false);
  std::vector<float> got(want.size());
  attention(params(c, d, scale, got.data()), pg.blocks);
  EXPECT_LT(max_abs_diff(got, want), 1e-4);
  for (float x : got) ASSERT_TRUE(std::isfinite(x));
}

TEST_P(AttentionTest, BadShapesThrow) {
  AttnParams p{.n_tok = 1, .n_head = 6, .n_kv_head = 4, .dk = 8, .dv = 8};
  EXPECT_THROW(attention(p, {}), Error);
  p.n_kv_head = 2;
  EXPECT_THROW(attention(p, {}), Error);  // q/out/pos missing
  std::vector<float> q(48), out(48), kv(64);
  const int32_t pos = 1;
  p.q = q.data(), p.q_tok_stride = 48, p.q_head_stride = 8, p.out = out.data(), p.o_tok_stride = 48,
  p.o_head_stride = 8, p.pos = &pos, p.k_head_offset = 8, p.v_head_offset = 8;
  const KvBlock overlapping{.k = kv.data(), .v = kv.data(), .rows = 2, .k_stride = 8, .v_stride = 16};
  EXPECT_THROW(attention(p, std::span(&overlapping, 1)), Error);  // 2 KV heads need 16 floats a row
  const KvBlock ok{.k = kv.data(), .v = kv.data(), .rows = 2, .k_stride = 16, .v_stride = 16};
  EXPECT_NO_THROW(attention(p, std::span(&ok, 1)));
}

INSTANTIATE_TEST_SUITE_P(Isa, AttentionTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "portable" : "simd"; });

}  // namespace
}  // namespace whale
