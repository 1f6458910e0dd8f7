// A token's result must not depend on how its cache is laid out or what shares its batch: the
// server keeps caches in pages and batches requests together, `whale run` keeps one flat
// cache and runs alone, and both must give the same tokens for the same seed. On the fast
// (8-bit activation) path a last-bit difference anywhere upstream can flip an activation's
// int8 rounding and move a logit by 1e-2, so the checks here are bit for bit (memcmp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "fixtures.h"
#include "kernels/attention.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "runtime/kv_pool.h"

namespace whale {
namespace {

namespace fs = std::filesystem;

// The same cache rows cut into blocks of `page` rows (copied, so each block is its own buffer).
struct Cut {
  std::vector<std::vector<float>> k, v;
  std::vector<KvBlock> blocks;
};

Cut cut(const std::vector<float>& k, const std::vector<float>& v, int64_t T, int64_t kw, int64_t vw,
        int64_t page) {
  Cut c;
  for (int64_t r0 = 0; r0 < T; r0 += page) {
    const int64_t n = std::min(page, T - r0);
    c.k.emplace_back(k.begin() + r0 * kw, k.begin() + (r0 + n) * kw);
    c.v.emplace_back(v.begin() + r0 * vw, v.begin() + (r0 + n) * vw);
  }
  for (size_t b = 0; b < c.k.size(); ++b)
    c.blocks.push_back({.k = c.k[b].data(), .v = c.v[b].data(), .rows = int64_t(c.k[b].size()) / kw,
                        .k_stride = kw, .v_stride = vw, .pos0 = int64_t(b) * page});
  return c;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> x(n);
  for (float& e : x) e = d(rng);
  return x;
}

class AttentionBlocks : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { force_portable_attention(GetParam()); }
  void TearDown() override { force_portable_attention(false); }
};

// Any cut of the cache into blocks gives the bits of one flat block, for MLA and GQA, for
// decode and for a prefill whose queries sit at the last positions.
TEST_P(AttentionBlocks, ResultDoesNotDependOnTheCut) {
  std::mt19937 rng(7);
  for (bool mla : {true, false})
    for (int64_t T : {5, 64, 65, 200, 1100}) {  // 1100: split into segments over threads
      const int64_t H = mla ? 8 : 6, Hkv = mla ? 1 : 2, C = 48, dr = 8, dh = 24;
      const int64_t kw = mla ? C + dr : Hkv * dh, vw = mla ? C + dr : Hkv * dh;
      const std::vector<float> k = randn(size_t(T * kw), rng, 1.0f), v = randn(size_t(T * vw), rng, 1.0f);
      for (int64_t n_tok : {int64_t(1), std::min<int64_t>(T, 6)}) {
        const int64_t dq = mla ? C + dr : dh, dout = mla ? C : dh;
        const std::vector<float> q = randn(size_t(n_tok * H * dq), rng, 0.5f);
        std::vector<int32_t> pos(static_cast<size_t>(n_tok));
        for (int64_t t = 0; t < n_tok; ++t) pos[size_t(t)] = int32_t(T - n_tok + t);
        auto run = [&](int64_t page) {
          const Cut c = cut(k, v, T, kw, mla ? C + dr : vw, page);
          std::vector<float> out(static_cast<size_t>(n_tok * H * dout));
          if (mla)
            mla_attention(q.data(), n_tok, H, C, dr, pos.data(), 0.3f, c.blocks, out.data());
          else
            gqa_attention(q.data(), n_tok, H, Hkv, dh, pos.data(), 0.3f, c.blocks, out.data());
          return out;
        };
        const std::vector<float> flat = run(T);
        for (int64_t page : {1, 3, 8, 16, 63, 64, 100}) {
          if (page >= T) continue;
          const std::vector<float> paged = run(page);
          EXPECT_EQ(std::memcmp(paged.data(), flat.data(), flat.size() * sizeof(float)), 0)
              << (mla ? "MLA" : "GQA") << " T " << T << " n_tok " << n_tok << " pages of " << page;
        }
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Isa, AttentionBlocks, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "portable" : "simd"; });

// Whole models: a prompt fed into one flat cache (as `whale run` does) and into pages of 8 or
// 16 positions while another sequence shares every forward (as the server does) gives the
// same logits at every position, bit for bit, on the exact and the fast matmul paths, with an
// f32 and an f16 cache.
struct ModelCase {
  const char* dir;
  const char* file;
};

class ModelBatches : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelBatches, PagedAndBatchedEqualsFlatAndAlone) {
  const fs::path path = fs::path(test::fixtures_dir()) / "models" / GetParam().dir / GetParam().file;
  if (!fs::exists(path)) GTEST_SKIP() << "missing " << path;
  const auto model = load_model(path.string());
  const ModelConfig& cfg = model->config();
  const int64_t V = cfg.n_vocab, N = 40;
  std::vector<int32_t> toks(N), other(N), pos(N);
  for (int64_t i = 0; i < N; ++i) {
    toks[size_t(i)] = int32_t((i * 37 + 11) % V);
    other[size_t(i)] = int32_t((i * 53 + 5) % V);
    pos[size_t(i)] = int32_t(i);
  }
  struct Restore {
    MatmulPrecision was = matmul_precision();
    ~Restore() { set_matmul_precision(was); }
  } restore;
  for (KvType cache : {KvType(DType::F32), KvType(DType::F16)})
  for (MatmulPrecision precision : {MatmulPrecision::Exact, MatmulPrecision::Fast}) {
    set_matmul_precision(precision);
    std::vector<float> flat(static_cast<size_t>(N * V));
    {
      KvCache kv(cfg, N, cache);
      model->forward(toks, pos, kv, flat.data(), true);
    }
    for (int64_t page : {8, 16})
      for (int64_t chunk : {1, 5}) {
        KvPagePool pool(cfg, 2 * ((N + page - 1) / page), page, cache);
        std::vector<void*> ka, va, kb, vb;
        for (int64_t i = 0; i < (N + page - 1) / page; ++i) {
          const int32_t a = pool.allocate(), b = pool.allocate();
          ka.push_back(pool.k_base(a)), va.push_back(pool.v_base(a));
          kb.push_back(pool.k_base(b)), vb.push_back(pool.v_base(b));
        }
        std::vector<float> got(static_cast<size_t>(N * V)), other_logits(static_cast<size_t>(V));
        for (int64_t s = 0; s < N; s += chunk) {
          const int64_t n = std::min(chunk, N - s);
          const SeqBatch sb[2] = {
              {.tokens = std::span(toks).subspan(size_t(s), size_t(n)),
               .positions = std::span(pos).subspan(size_t(s), size_t(n)), .kv = pool.blocks(ka, va),
               .logits = got.data() + s * V, .all_logits = true},
              {.tokens = std::span(other).subspan(size_t(s), size_t(n)),
               .positions = std::span(pos).subspan(size_t(s), size_t(n)), .kv = pool.blocks(kb, vb),
               .logits = other_logits.data(), .all_logits = false}};
          model->forward_batch(sb);
        }
        for (int64_t i = 0; i < N; ++i)
          ASSERT_EQ(std::memcmp(got.data() + i * V, flat.data() + i * V, size_t(V) * sizeof(float)), 0)
              << precision_name(precision) << ", " << dtype_name(cache) << " cache: position " << i << " differs (pages of " << page
              << ", chunks of " << chunk << ")";
      }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, ModelBatches,
    ::testing::Values(ModelCase{"deepseek-v3-tiny", "model-q8_0.gguf"},
                      ModelCase{"deepseek-v2-lite-tiny", "model-q8_0.gguf"},
                      ModelCase{"r1-distill-qwen-tiny", "model-q8_0.gguf"},
                      ModelCase{"r1-distill-llama-tiny", "model-q8_0.gguf"}),
    [](const auto& info) {
      std::string s = std::string(info.param.dir);
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

}  // namespace
}  // namespace whale
