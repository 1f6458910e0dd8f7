// deepseek2's three MLA forms give the same logits on the fixtures: absorbed (decode and
// short batches), expanded with the attention kernel (long prefills, forced here for every
// batch) and the naive oracle (expanded, scalar loops).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "fixtures.h"
#include "model/model.h"
#include "kernels/matmul.h"

// Equivalences of forms and of batching are algebraic: check them on the exact path (float32
// activations). The 8-bit-activation default quantizes intermediate results differently per
// form, and its kernels for one token and for many round differently (test_models_fast).
[[maybe_unused]] static const bool kExactMatmul = (whale::set_matmul_precision(whale::MatmulPrecision::Exact), true);

namespace whale {
namespace {

std::vector<float> run(const std::string& path, const LoadOptions& o, const std::vector<int32_t>& toks) {
  auto m = load_model(path, o);
  const int64_t V = m->config().n_vocab, n = int64_t(toks.size());
  KvCache kv(m->config(), 64);
  std::vector<int32_t> pos(toks.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = int32_t(i);
  // a 5-token prefill, then the rest one by one and as one more batch of 3
  std::vector<float> logits(size_t(n * V));
  m->forward(std::span(toks.data(), 5), std::span(pos.data(), 5), kv, logits.data(), true);
  for (int64_t i = 5; i < n - 3; ++i)
    m->forward(std::span(&toks[size_t(i)], 1), std::span(&pos[size_t(i)], 1), kv, &logits[size_t(i * V)], false);
  std::vector<float> tail(size_t(3 * V));
  m->forward(std::span(&toks[size_t(n - 3)], 3), std::span(&pos[size_t(n - 3)], 3), kv, tail.data(), true);
  std::copy(tail.begin(), tail.end(), logits.begin() + (n - 3) * V);
  return logits;
}

TEST(MlaForms, ExpandedAbsorbedNaiveAgree) {
  const std::vector<int32_t> toks = {3, 99, 250, 7, 7, 401, 12, 88, 300, 5, 61, 2};
  for (const char* name : {"deepseek-v2-lite-tiny", "deepseek-v3-tiny"}) {
    const std::string path = test::fixtures_dir() + "/models/" + name + "/model-q8_0.gguf";
    if (!std::filesystem::exists(path)) continue;
    const auto absorbed = run(path, {}, toks);
    const auto expanded = run(path, {.mla_expanded_min = 1}, toks);
    const auto naive = run(path, {.naive_mla = true}, toks);
    float scale = 0;
    for (float x : naive) scale = std::max(scale, std::abs(x));
    double e1 = 0, e2 = 0;
    for (size_t i = 0; i < naive.size(); ++i) {
      e1 = std::max(e1, double(std::abs(absorbed[i] - naive[i])));
      e2 = std::max(e2, double(std::abs(expanded[i] - naive[i])));
    }
    std::printf("%s: max |absorbed - naive| %.3g, |expanded - naive| %.3g (largest logit %.3g)\n", name, e1, e2, scale);
    EXPECT_LT(e1, 1e-4 * scale) << name;
    EXPECT_LT(e2, 1e-4 * scale) << name;
  }
}

}  // namespace
}  // namespace whale
