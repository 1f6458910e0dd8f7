// Server metrics in the Prometheus text exposition format (version 0.0.4): request counts by
// endpoint and status, token counts, and the scheduler's live state (queue depth, active
// requests, KV-cache pages, recent decode tokens/s). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "runtime/scheduler.h"

namespace whale::server {

class Metrics {
 public:
  void count_request(const std::string& endpoint, int status);
  void count_tokens(int64_t prompt, int64_t completion);
  std::string render(const SchedulerStats& s) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
};

}  // namespace whale::server
