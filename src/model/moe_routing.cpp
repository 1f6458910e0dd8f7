#include "model/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/ops.h"

namespace whale {

namespace {
// Index of the largest of v[0..n) not yet taken; ties → lowest index.
int64_t argmax_excluding(const float* v, int64_t n, const bool* taken) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
  return best;
}
}  // namespace

void route_token(const RouterParams& p, const float* logits, int32_t* experts, float* weights,
                 float* scratch) {
  const int64_t E = p.n_expert;
  float* scores = scratch;         // unbiased
  float* select = scratch + E;     // biased, masked
  float* group_score = scratch + 2 * E;  // [n_group] (n_group <= E)
  std::copy(logits, logits + E, scores);
  if (p.scoring == ScoringFunc::Softmax) {
    softmax_inplace(scores, E);
  } else {
    for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-scores[e]));
  }
  for (int64_t e = 0; e < E; ++e) select[e] = p.bias ? scores[e] + p.bias[e] : scores[e];

  bool taken[1024];
  bool* taken_buf = E <= 1024 ? taken : new bool[size_t(E)];
  if (p.n_group > 1) {
    const int64_t per = E / p.n_group;
    for (int64_t g = 0; g < p.n_group; ++g) {
      const float* s = select + g * per;
      if (!p.bias) {
        group_score[g] = *std::max_element(s, s + per);
      } else {
        float a = -std::numeric_limits<float>::infinity(), b = a;  // top-2
        for (int64_t i = 0; i < per; ++i) {
          if (s[i] > a) { b = a; a = s[i]; }
          else if (s[i] > b) b = s[i];
        }
        group_score[g] = a + b;
      }
    }
    std::fill(taken_buf, taken_buf + p.n_group, false);
    for (int64_t k = 0; k < p.topk_group; ++k) taken_buf[argmax_excluding(group_score, p.n_group, taken_buf)] = true;
    for (int64_t g = 0; g < p.n_group; ++g)
      if (!taken_buf[g])
        std::fill(select + g * per, select + (g + 1) * per, -std::numeric_limits<float>::infinity());
  }
  std::fill(taken_buf, taken_buf + E, false);
  float sum = 0;
  for (int64_t k = 0; k < p.top_k; ++k) {
    int64_t e = argmax_excluding(select, E, taken_buf);
    taken_buf[e] = true;
    experts[k] = int32_t(e);
    weights[k] = scores[e];
    sum += scores[e];
  }
  for (int64_t k = 0; k < p.top_k; ++k) {
    if (p.norm_topk_prob) weights[k] /= sum;
    weights[k] *= p.routed_scaling;
  }
  if (taken_buf != taken) delete[] taken_buf;
}

}  // namespace whale
