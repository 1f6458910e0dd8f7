// Token sampling from logits: greedy (temperature 0; ties → lowest id) or temperature with
// top-k and top-p (nucleus) filtering, from a seeded generator so runs are reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace whale {

struct SamplerParams {
  float temperature = 0.8f;  // <= 0: greedy
  int32_t top_k = 40;        // <= 0: no limit
  float top_p = 0.95f;       // >= 1: no limit
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  int32_t sample(const float* logits, int64_t n_vocab);

 private:
  int32_t sample_top_k(const float* logits, int64_t n);
  int32_t sample_whole_vocab(const float* logits, int64_t n);
  int32_t draw_sorted(size_t keep, double sum);

  SamplerParams p_;
  std::mt19937_64 rng_;
  // Reused across calls (sampling allocates nothing once they have grown).
  std::vector<std::pair<float, int32_t>> cand_;  // (logit, id), best first where sorted
  std::vector<double> probs_;                    // unnormalised, parallel to cand_ (top-k path)
  std::vector<float> weights_;                   // unnormalised, by token id (whole-vocab path)
};

int32_t argmax_lowest(const float* logits, int64_t n);

}  // namespace whale
