// DeepSeekMoE routing, exactly as DeepSeek's inference/model.py Gate computes it:
//   scores = softmax(logits) or sigmoid(logits)           (float32)
//   selection = scores + bias                              (bias: e_score_correction_bias, V3)
//   groups (n_group > 1): group score = max(selection in group) without bias,
//                         sum of its top-2 selection scores with bias;
//                         keep the topk_group best groups, mask the rest to -inf
//   chosen = top-k of selection; weight = unbiased score of each chosen expert,
//   divided by their sum when norm_topk_prob, then times routed_scaling_factor.
// Ties go to the lower expert / group index.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace whale {

struct RouterParams {
  ScoringFunc scoring = ScoringFunc::Softmax;
  int64_t n_expert = 0, top_k = 0, n_group = 1, topk_group = 1;
  bool norm_topk_prob = false;
  float routed_scaling = 1.0f;
  const float* bias = nullptr;  // [n_expert] or null
};

// logits: [n_expert] router outputs for one token. Writes top_k expert ids (best first) and
// their weights. `scratch` holds 3 * n_expert floats.
void route_token(const RouterParams& p, const float* logits, int32_t* experts, float* weights,
                 float* scratch);

}  // namespace whale
