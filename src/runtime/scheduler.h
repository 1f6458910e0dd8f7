// Continuous-batching scheduler: many requests share one model; every step runs ONE batched
// forward holding a decode token of every active request plus chunks of pending prefills.
// KV lives in a paged cache (MLA latent pages for deepseek2); full pages of a finished prompt
// are kept for prefix reuse. Thread-safe: submit/cancel/stats from any thread; the scheduler
// runs its own loop thread. Events are delivered on the loop thread: callbacks must be quick
// (they may call submit/cancel/stats, never the destructor). The scheduler owns the model's
// forward while it lives: run no other forward on the same model (or the same thread pool)
// concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"

namespace whale {

struct SchedulerOptions {
  int64_t n_ctx = 4096;        // per-request limit: prompt + generated tokens
  int64_t parallel = 4;        // requests decoded together (slots)
  int64_t queue_max = 64;      // waiting requests beyond the slots; submit fails when full
  int64_t kv_tokens = 0;       // total paged-KV budget in tokens (0: parallel * n_ctx)
  int64_t prefill_chunk = 256; // prompt tokens per step per request
  // Tokens per step over all requests (llama-server's -b, vLLM's max_num_batched_tokens): the
  // decode tokens of running requests come first, then prefill chunks in admission order until
  // the budget is spent, so long prompts arriving together cannot make one huge step that
  // stalls every decode. Must hold one decode token per slot (>= parallel).
  int64_t batch_tokens = 512;
  int64_t kv_page_tokens = 16; // positions per KV page (the unit of sharing and allocation)
  KvType kv_type = DType::F32; // element type of the cached rows (f32 or f16)
};

struct GenRequest {
  std::vector<int32_t> prompt;
  SamplerParams sampling;
  int64_t max_tokens = 256;
  std::vector<int32_t> stop_tokens;  // end of generation; not reported as a token
};

// One event per generated token, then a final one with done = true.
struct GenEvent {
  int32_t token = -1;           // valid when !done
  bool done = false;
  std::string finish_reason;    // when done: "stop", "length", "cancelled", "error"
  std::string error;            // when finish_reason == "error"
  int64_t prompt_tokens = 0, cached_tokens = 0, generated = 0;  // when done
};

struct SchedulerStats {
  int64_t active = 0, queued = 0, requests_total = 0, tokens_generated = 0, prompt_tokens = 0;
  int64_t cached_tokens = 0;  // prompt tokens served from the prefix cache (not recomputed)
  int64_t kv_pages_used = 0, kv_pages_total = 0, kv_page_tokens = 0;
  int64_t kv_pages_cached = 0;  // pages in the prefix cache (referenced or idle)
  double decode_tokens_per_s = 0;  // recent aggregate
  int64_t steps = 0;              // batched forwards run so far
  int64_t max_step_tokens = 0;    // most tokens any one step computed (never above batch_tokens)
};

class Scheduler {
 public:
  using Handle = uint64_t;
  Scheduler(Model& model, const SchedulerOptions& opts);
  ~Scheduler();  // cancels everything and joins the loop thread

  // Returns 0 when the queue is full (the caller answers 429/503). Throws whale::Error for a
  // request that can never run (empty prompt, prompt + 1 > n_ctx, token id out of range).
  Handle submit(GenRequest req, std::function<void(const GenEvent&)> on_event);
  // Frees the request's slot and pages at once; its final event says "cancelled".
  void cancel(Handle h);
  SchedulerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace whale
