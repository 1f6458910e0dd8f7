// End-to-end fixture tests: every model in ../shared/fixtures/models, from every file format
// present, against logits and greedy continuations from DeepSeek's official inference code
// (deepseek2) and a Hugging Face-semantics forward (qwen2, llama). Tolerances from the
// fixtures README: max |got - expected| / max |expected| <= 1e-4 over all positions.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "core/error.h"
#include "fixtures.h"
#include "kernels/matmul.h"
#include "model/model.h"
#include "runtime/sampler.h"

// These suites check the exact path (float32 activations, 1e-4); test_models_fast covers the
// 8-bit-activation default against its own tolerance.
[[maybe_unused]] static const bool kExactMatmul = (whale::set_matmul_precision(whale::MatmulPrecision::Exact), true);

namespace whale {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct ModelCase {
  std::string dir;     // fixture folder name
  std::string file;    // "hf", "model-bf16.gguf", "model-q8_0.gguf"
  bool q8 = false;     // compare against the q8_0 oracle
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.dir << "/" << c.file; }

std::vector<ModelCase> all_model_files() {
  std::vector<ModelCase> out;
  const fs::path root = fs::path(test::fixtures_dir()) / "models";
  if (!fs::exists(root)) return out;
  std::vector<std::string> dirs;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory()) dirs.push_back(e.path().filename().string());
  std::sort(dirs.begin(), dirs.end());
  for (auto& d : dirs) {
    for (const char* f : {"hf", "model-bf16.gguf", "model-q8_0.gguf", "model-f32.gguf"})
      if (fs::exists(root / d / f)) out.push_back({d, f, std::string(f).find("q8_0") != std::string::npos});
  }
  return out;
}

std::string case_name(const testing::TestParamInfo<ModelCase>& info) {
  std::string s = info.param.dir + "_" + info.param.file;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

// Worst error of each fixture, printed at the end for the closing note.
std::map<std::string, double>& worst_errors() {
  static std::map<std::string, double> m;
  return m;
}

class ModelFixture : public testing::TestWithParam<ModelCase> {
 protected:
  fs::path dir() const { return fs::path(test::fixtures_dir()) / "models" / GetParam().dir; }
  json cases() const {
    json j = json::parse(test::read_text((dir() / "cases.json").string()), nullptr, false);
    EXPECT_FALSE(j.is_discarded());
    return j;
  }
  std::unique_ptr<Model> load(bool naive = false) const {
    return load_model((dir() / GetParam().file).string(), LoadOptions{.naive_mla = naive});
  }
  static std::vector<float> prefill(Model& m, const std::vector<int32_t>& toks, int64_t n_ctx,
                                    KvType kv_type = DType::F32) {
    KvCache kv(m.config(), n_ctx, kv_type);
    std::vector<int32_t> pos(toks.size());
    std::iota(pos.begin(), pos.end(), 0);
    std::vector<float> logits(toks.size() * size_t(m.config().n_vocab));
    m.forward(toks, pos, kv, logits.data(), true);
    return logits;
  }
};

// An f16 cache row: stored and loaded back within f16 rounding (2^-11 relative), saturated at
// the largest finite f16 instead of becoming inf, half the bytes of f32; a bad type is an error.
TEST(KvCacheF16, RoundTripSaturatesAndHalvesBytes) {
  ModelConfig c;
  c.arch = Arch::Qwen2, c.n_layer = 2, c.n_head_kv = 2, c.head_dim = 4;
  KvCache f16(c, 3, DType::F16), f32(c, 3);
  EXPECT_EQ(f16.bytes_per_token() * 2, f32.bytes_per_token());
  const std::vector<float> row = {1.0f, -3.14159f, 1e-3f, 7e4f, -1e9f, 0.1f, 2048.5f, -0.0f};
  const KvBlocks b = f16.blocks();
  b.store_k(1, 2, row.data());
  b.store_v(1, 2, row.data());
  std::vector<float> k(row.size()), v(row.size());
  b.load_k(1, 2, k.data());
  b.load_v(1, 2, v.data());
  for (size_t i = 0; i < row.size(); ++i) {
    const float want = std::clamp(row[i], -65504.0f, 65504.0f);
    EXPECT_NEAR(k[i], want, std::fabs(want) * 0x1p-11f) << i;
    EXPECT_EQ(k[i], v[i]);
    EXPECT_TRUE(std::isfinite(k[i]));
  }
  std::vector<float> other(row.size(), 5.0f);  // a neighbouring row is untouched
  b.load_k(1, 1, other.data());
  for (float x : other) EXPECT_EQ(x, 0.0f);
  EXPECT_THROW(KvCache(c, 3, DType::Q8_0), Error);
  EXPECT_THROW(parse_kv_type("f8"), Error);
}

TEST(ModelFixtures, FixturesArePresent) {
  ASSERT_GE(all_model_files().size(), 5u) << "no model fixtures under " << test::fixtures_dir();
}

TEST_P(ModelFixture, LogitsMatchReferenceAtEveryPosition) {
  auto model = load();
  const int64_t V = model->config().n_vocab;
  for (auto& c : cases()) {
    std::vector<int32_t> toks = c["tokens"].get<std::vector<int32_t>>();
    const std::string ref = GetParam().q8 ? c["q8_0_logits"] : c["logits"];
    std::vector<float> expected = test::read_f32((dir() / ref).string());
    ASSERT_EQ(expected.size(), toks.size() * size_t(V)) << ref;
    std::vector<float> got = prefill(*model, toks, int64_t(toks.size()));
    double err = 0;
    for (size_t i = 0; i < got.size(); ++i) err = std::max(err, double(std::fabs(got[i] - expected[i])));
    const double rel = err / max_abs(expected);
    auto& w = worst_errors()[GetParam().dir + "/" + GetParam().file];
    w = std::max(w, rel);
    EXPECT_LE(rel, 1e-4) << c["name"] << ": max abs err " << err;
  }
}

// The f16 KV cache (the CLI default) rounds every cached K/V element to 11 significant bits:
// the logits stay within a small bound of the f32 reference, and prefill still equals
// token-by-token decode (both read the same rounded rows).
TEST_P(ModelFixture, F16CacheLogitsCloseToReference) {
  auto model = load();
  const int64_t V = model->config().n_vocab;
  double worst = 0;
  for (auto& c : cases()) {
    std::vector<int32_t> toks = c["tokens"].get<std::vector<int32_t>>();
    const std::string ref = GetParam().q8 ? c["q8_0_logits"] : c["logits"];
    std::vector<float> expected = test::read_f32((dir() / ref).string());
    std::vector<float> got = prefill(*model, toks, int64_t(toks.size()), DType::F16);
    double err = 0;
    for (size_t i = 0; i < got.size(); ++i) err = std::max(err, double(std::fabs(got[i] - expected[i])));
    const double rel = err / max_abs(expected);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-3) << c["name"] << ": max abs err " << err;  // measured <= 2.4e-4
  }
  EXPECT_GT(worst, 0.0) << "the f16 cache changed nothing: is it really f16?";
  auto c = cases().back();
  std::vector<int32_t> toks = c["tokens"].get<std::vector<int32_t>>();
  std::vector<float> batch = prefill(*model, toks, int64_t(toks.size()), DType::F16);
  KvCache kv(model->config(), int64_t(toks.size()), DType::F16);
  EXPECT_EQ(kv.bytes_per_token() * 2, KvCache(model->config(), 1).bytes_per_token());
  std::vector<float> one(static_cast<size_t>(V));
  double err = 0;
  for (size_t i = 0; i < toks.size(); ++i) {
    int32_t p = int32_t(i);
    model->forward(std::span(&toks[i], 1), std::span(&p, 1), kv, one.data(), false);
    for (int64_t j = 0; j < V; ++j) err = std::max(err, double(std::fabs(one[j] - batch[i * V + j])));
  }
  EXPECT_LE(err / max_abs(batch), 1e-5);
  std::printf("%s: f16 cache worst rel err %.3g\n", GetParam().dir.c_str(), worst);
}

TEST_P(ModelFixture, GreedyContinuationMatchesReference) {
  auto model = load();
  const int64_t V = model->config().n_vocab;
  for (auto& c : cases()) {
    std::vector<int32_t> toks = c["tokens"].get<std::vector<int32_t>>();
    std::vector<int32_t> expected =
        (GetParam().q8 ? c["q8_0_oracle_greedy"] : c["greedy"]).get<std::vector<int32_t>>();
    const int64_t n_ctx = int64_t(toks.size() + expected.size());
    KvCache kv(model->config(), n_ctx);
    std::vector<int32_t> pos(toks.size());
    std::iota(pos.begin(), pos.end(), 0);
    std::vector<float> logits(static_cast<size_t>(V));
    model->forward(toks, pos, kv, logits.data(), false);
    std::vector<int32_t> got;
    for (size_t i = 0; i < expected.size(); ++i) {
      int32_t tok = argmax_lowest(logits.data(), V);
      got.push_back(tok);
      int32_t p = int32_t(toks.size() + i);
      model->forward(std::span(&tok, 1), std::span(&p, 1), kv, logits.data(), false);
    }
    EXPECT_EQ(got, expected) << c["name"];
  }
}

TEST_P(ModelFixture, PrefillEqualsTokenByTokenDecode) {
  auto model = load();
  const int64_t V = model->config().n_vocab;
  auto c = cases().back();  // the longest prompt
  std::vector<int32_t> toks = c["tokens"].get<std::vector<int32_t>>();
  std::vector<float> batch = prefill(*model, toks, int64_t(toks.size()));
  KvCache kv(model->config(), int64_t(toks.size()));
  std::vector<float> one(static_cast<size_t>(V));
  double err = 0;
  for (size_t i = 0; i < toks.size(); ++i) {
    int32_t p = int32_t(i);
    model->forward(std::span(&toks[i], 1), std::span(&p, 1), kv, one.data(), false);
    for (int64_t j = 0; j < V; ++j) err = std::max(err, double(std::fabs(one[j] - batch[i * V + j])));
  }
  EXPECT_LE(err / max_abs(batch), 1e-5);
  // Split prefill: a first chunk, then the rest in a second call on the same cache.
  KvCache kv2(model->config(), int64_t(toks.size()));
  const size_t half = toks.size() / 2;
  if (half == 0) return;
  std::vector<int32_t> p1(half), p2(toks.size() - half);
  std::iota(p1.begin(), p1.end(), 0);
  std::iota(p2.begin(), p2.end(), int32_t(half));
  std::vector<float> l1(half * V), l2(p2.size() * V);
  model->forward(std::span(toks.data(), half), p1, kv2, l1.data(), true);
  model->forward(std::span(toks.data() + half, p2.size()), p2, kv2, l2.data(), true);
  double err2 = 0;
  for (size_t i = 0; i < l2.size(); ++i) err2 = std::max(err2, double(std::fabs(l2[i] - batch[half * V + i])));
  EXPECT_LE(err2 / max_abs(batch), 1e-5);
}

TEST_P(ModelFixture, AbsorbedMlaEqualsNaive) {
  auto model = load();
  if (model->config().arch != Arch::Deepseek2) GTEST_SKIP() << "not an MLA model";
  auto naive = load(/*naive=*/true);
  auto c = cases().back();
  std::vector<int32_t> toks = c["tokens"].get<std::vector<int32_t>>();
  std::vector<float> a = prefill(*model, toks, int64_t(toks.size()));
  std::vector<float> b = prefill(*naive, toks, int64_t(toks.size()));
  double err = 0;
  for (size_t i = 0; i < a.size(); ++i) err = std::max(err, double(std::fabs(a[i] - b[i])));
  EXPECT_LE(err / max_abs(b), 1e-5);
}

TEST_P(ModelFixture, MtpLayerIsRecognisedNotUsed) {
  auto model = load();
  EXPECT_TRUE(model->unused_tensors().empty())
      << "unexpected unused tensor " << model->unused_tensors().front();
}

INSTANTIATE_TEST_SUITE_P(All, ModelFixture, testing::ValuesIn(all_model_files()), case_name);

class PrintWorst : public testing::Environment {
 public:
  void TearDown() override {
    for (auto& [k, v] : worst_errors()) std::printf("[worst rel err] %-45s %.3g\n", k.c_str(), v);
  }
};
const auto* const kEnv = testing::AddGlobalTestEnvironment(new PrintWorst);

}  // namespace
}  // namespace whale
