#include "server/metrics.h"

#include <fmt/format.h>

#include <string_view>
#include <type_traits>

namespace whale::server {

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lk(mu_);
  ++requests_[{endpoint, status}];
}

void Metrics::count_tokens(int64_t prompt, int64_t completion) {
  std::lock_guard lk(mu_);
  prompt_tokens_ += prompt;
  completion_tokens_ += completion;
}

std::string Metrics::render(const SchedulerStats& s) const {
  std::lock_guard lk(mu_);
  std::string out;
  // One metric family: its HELP and TYPE lines, then one sample line per value.
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto single = [&](std::string_view name, std::string_view type, std::string_view help, auto value) {
    family(name, type, help);
    if constexpr (std::is_floating_point_v<decltype(value)>) out += fmt::format("{} {:.6f}\n", name, value);
    else out += fmt::format("{} {}\n", name, value);
  };
  family("whale_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
  for (const auto& [key, n] : requests_)
    out += fmt::format("whale_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  single("whale_prompt_tokens_total", "counter", "Prompt tokens of completed requests.", prompt_tokens_);
  single("whale_completion_tokens_total", "counter", "Tokens generated for completed requests.", completion_tokens_);
  single("whale_scheduler_requests_total", "counter", "Requests accepted by the scheduler.", s.requests_total);
  single("whale_scheduler_tokens_generated_total", "counter", "Tokens decoded by the scheduler.", s.tokens_generated);
  single("whale_scheduler_steps_total", "counter", "Batched forward steps run by the scheduler.", s.steps);
  single("whale_scheduler_max_step_tokens", "gauge", "Most tokens one scheduler step has computed (at most --batch-size).",
         s.max_step_tokens);
  single("whale_requests_active", "gauge", "Requests being decoded now.", s.active);
  single("whale_requests_queued", "gauge", "Requests waiting for a slot (queue depth).", s.queued);
  single("whale_decode_tokens_per_second", "gauge", "Recent aggregate decode throughput.", s.decode_tokens_per_s);
  single("whale_kv_cache_pages_used", "gauge", "KV-cache pages in use.", s.kv_pages_used);
  single("whale_kv_cache_pages_total", "gauge", "KV-cache pages in the budget.", s.kv_pages_total);
  single("whale_kv_cache_page_tokens", "gauge", "Tokens per KV-cache page.", s.kv_page_tokens);
  single("whale_kv_cache_usage_ratio", "gauge", "Fraction of the KV-cache budget in use.",
         s.kv_pages_total > 0 ? double(s.kv_pages_used) / double(s.kv_pages_total) : 0.0);
  return out;
}

}  // namespace whale::server
