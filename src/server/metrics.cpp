#include "server/metrics.h"

#include <fmt/format.h>

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
  auto metric = [&](const char* name, const char* type, const char* help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  metric("whale_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
  for (const auto& [key, n] : requests_)
    out += fmt::format("whale_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
  metric("whale_prompt_tokens_total", "counter", "Prompt tokens of completed requests.");
  out += fmt::format("whale_prompt_tokens_total {}\n", prompt_tokens_);
  metric("whale_completion_tokens_total", "counter", "Tokens generated for completed requests.");
  out += fmt::format("whale_completion_tokens_total {}\n", completion_tokens_);
  metric("whale_scheduler_requests_total", "counter", "Requests accepted by the scheduler.");
  out += fmt::format("whale_scheduler_requests_total {}\n", s.requests_total);
  metric("whale_scheduler_tokens_generated_total", "counter", "Tokens decoded by the scheduler.");
  out += fmt::format("whale_scheduler_tokens_generated_total {}\n", s.tokens_generated);
  metric("whale_requests_active", "gauge", "Requests being decoded now.");
  out += fmt::format("whale_requests_active {}\n", s.active);
  metric("whale_requests_queued", "gauge", "Requests waiting for a slot (queue depth).");
  out += fmt::format("whale_requests_queued {}\n", s.queued);
  metric("whale_decode_tokens_per_second", "gauge", "Recent aggregate decode throughput.");
  out += fmt::format("whale_decode_tokens_per_second {:.3f}\n", s.decode_tokens_per_s);
  metric("whale_kv_cache_pages_used", "gauge", "KV-cache pages in use.");
  out += fmt::format("whale_kv_cache_pages_used {}\n", s.kv_pages_used);
  metric("whale_kv_cache_pages_total", "gauge", "KV-cache pages in the budget.");
  out += fmt::format("whale_kv_cache_pages_total {}\n", s.kv_pages_total);
  metric("whale_kv_cache_page_tokens", "gauge", "Tokens per KV-cache page.");
  out += fmt::format("whale_kv_cache_page_tokens {}\n", s.kv_page_tokens);
  metric("whale_kv_cache_usage_ratio", "gauge", "Fraction of the KV-cache budget in use.");
  out += fmt::format("whale_kv_cache_usage_ratio {:.6f}\n",
                     s.kv_pages_total > 0 ? double(s.kv_pages_used) / double(s.kv_pages_total) : 0.0);
  return out;
}

}  // namespace whale::server
