#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>

namespace whale {

int32_t argmax_lowest(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return int32_t(best);
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}

// Order: higher logit first, lower id first on ties, so results do not depend on sort stability.
static bool better(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

int32_t Sampler::sample(const float* logits, int64_t n) {
  if (p_.temperature <= 0) return argmax_lowest(logits, n);
  if (p_.top_k > 0 && p_.top_k < n) return sample_top_k(logits, n);
  return sample_whole_vocab(logits, n);
}

// Draws from cand_[0, keep) with weights probs_[0, keep) summing to `sum`.
int32_t Sampler::draw_sorted(size_t keep, double sum) {
  double r = std::uniform_real_distribution<double>(0.0, sum)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= probs_[i];
    if (r < 0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

// Top-k first (a partial sort of k candidates), then top-p within them.
int32_t Sampler::sample_top_k(const float* logits, int64_t n) {
  cand_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) cand_[size_t(i)] = {logits[i], int32_t(i)};
  size_t keep = size_t(p_.top_k);
  std::partial_sort(cand_.begin(), cand_.begin() + long(keep), cand_.end(), better);
  const double inv_t = 1.0 / double(p_.temperature), mx = cand_[0].first;
  probs_.resize(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += probs_[i] = std::exp((cand_[i].first - mx) * inv_t);
  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t cut = keep;
    for (size_t i = 0; i < keep; ++i) {
      cum += probs_[i] / sum;
      if (cum >= p_.top_p) {
        cut = i + 1;
        break;
      }
    }
    keep = cut;
    sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += probs_[i];
  }
  return draw_sorted(keep, sum);
}

// No top-k. Sorting the whole vocabulary (10^5 entries) for every token of every request cost
// more than a decode step of a small model, so: weights over the vocabulary in id order
// (float exp; the probabilities need no more), then
//   - top_p >= 1: draw straight from them in id order, no sort at all;
//   - top_p < 1: sort only as many of the best candidates as the nucleus needs (growing the
//     sorted prefix geometrically; a flat distribution ends up sorting everything, as before).
int32_t Sampler::sample_whole_vocab(const float* logits, int64_t n) {
  const float mx = logits[argmax_lowest(logits, n)];
  const float inv_t = 1.0f / p_.temperature;
  weights_.resize(size_t(n));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += weights_[size_t(i)] = std::exp((logits[i] - mx) * inv_t);
  if (p_.top_p >= 1.0f) {
    double r = std::uniform_real_distribution<double>(0.0, sum)(rng_);
    for (int64_t i = 0; i < n; ++i) {
      r -= weights_[size_t(i)];
      if (r < 0) return int32_t(i);
    }
    return argmax_lowest(logits, n);  // r ran past the end by rounding: the likeliest token
  }
  cand_.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) cand_[size_t(i)] = {logits[i], int32_t(i)};
  const double target = double(p_.top_p) * sum;
  // cand_[0, sorted) holds the best candidates in order; each round selects and sorts the next
  // chunk (8x the last) behind them.
  size_t sorted = 0, chunk = 64, cut = 0;
  double cum = 0;
  while (cut == 0) {
    const size_t end = std::min(size_t(n), sorted + chunk);
    if (end < size_t(n)) std::nth_element(cand_.begin() + long(sorted), cand_.begin() + long(end), cand_.end(), better);
    std::sort(cand_.begin() + long(sorted), cand_.begin() + long(end), better);
    for (size_t i = sorted; i < end; ++i) {
      cum += weights_[size_t(cand_[i].second)];
      if (cum >= target) {
        cut = i + 1;
        break;
      }
    }
    if (cut == 0 && end == size_t(n)) cut = end;
    sorted = end;
    chunk *= 8;
  }
  probs_.resize(cut);
  double kept = 0;
  for (size_t i = 0; i < cut; ++i) kept += probs_[i] = weights_[size_t(cand_[i].second)];
  return draw_sorted(cut, kept);
}

}  // namespace whale
