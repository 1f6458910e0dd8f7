// DeepSeek-V3's auxiliary-loss-free load balancing and the expert-load statistics we log.
//
// After each optimizer step, for every MoE gate with a correction bias b (sigmoid routing):
//   b_i ← b_i + γ · sign(mean_j load_j − load_i)        (sign(0) = 0)
// where load_i is the number of tokens the batch routed to expert i. Overloaded experts get a
// lower selection score next step, idle ones a higher one; the bias only affects which experts
// are chosen, never the mixing weights, so no gradient flows through it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/train_model.h"

namespace whale::train {

// Applies the update to every gate of `report` that names a bias parameter (bias_param ≥ 0).
void update_balance_bias(std::vector<Param>& params, const LossReport& report, double gamma);

// Summary of one batch's routing: for each gate max_i load_i / mean load (1 = perfectly
// balanced), and the worst gate's value. Gates with no tokens count as balanced.
struct LoadStats {
  std::vector<double> max_over_mean;  // per gate
  double worst = 1.0;
  int64_t idle_experts = 0;           // experts that got no token, all gates together
};
LoadStats load_stats(const LossReport& report);

// "1.42 1.10 …": the per-gate figures, for logs.
std::string format_load_stats(const LoadStats& s);

}  // namespace whale::train
