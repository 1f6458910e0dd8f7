// Auxiliary-loss-free bias update and load statistics: see load_balance.h.
#include "train/load_balance.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"

namespace whale::train {

void update_balance_bias(std::vector<Param>& params, const LossReport& report, double gamma) {
  if (report.bias_param.size() != report.expert_loads.size())
    fail("load balancing: {} expert-load lists but {} bias indices", report.expert_loads.size(),
         report.bias_param.size());
  for (size_t g = 0; g < report.expert_loads.size(); ++g) {
    const int64_t bi = report.bias_param[g];
    if (bi < 0) continue;
    if (size_t(bi) >= params.size()) fail("load balancing: bias index {} out of range", bi);
    Param& bias = params[size_t(bi)];
    const std::vector<int64_t>& load = report.expert_loads[g];
    if (bias.value.size() != load.size())
      fail("load balancing: {} has {} entries, the gate reports {} expert loads", bias.name,
           bias.value.size(), load.size());
    if (load.empty()) continue;
    int64_t total = 0;
    for (int64_t l : load) total += l;
    // Compare n·load_i with the total instead of load_i with a rounded mean: exact in integers.
    const int64_t n = int64_t(load.size());
    for (size_t i = 0; i < load.size(); ++i) {
      const int64_t diff = total - n * load[i];  // n · (mean − load_i)
      const double sign = diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0;
      bias.value[i] = float(double(bias.value[i]) + gamma * sign);
    }
  }
}

LoadStats load_stats(const LossReport& report) {
  LoadStats s;
  for (const std::vector<int64_t>& load : report.expert_loads) {
    int64_t total = 0, mx = 0;
    for (int64_t l : load) {
      total += l, mx = std::max(mx, l);
      if (l == 0) ++s.idle_experts;
    }
    const double r = total > 0 ? double(mx) * double(load.size()) / double(total) : 1.0;
    s.max_over_mean.push_back(r);
    s.worst = std::max(s.worst, r);
  }
  return s;
}

std::string format_load_stats(const LoadStats& s) {
  std::string out;
  for (double r : s.max_over_mean) out += fmt::format("{}{:.2f}", out.empty() ? "" : " ", r);
  return out;
}

}  // namespace whale::train
