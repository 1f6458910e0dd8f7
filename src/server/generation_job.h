// One request's generation as an HTTP handler thread sees it: the request is submitted to the
// Scheduler, whose loop thread only pushes token events into this job's queue (quick); the
// handler thread pulls them and turns tokens into text deltas: StreamDecoder (whole UTF-8
// characters) → stop strings (held back until decided) → reasoning/content split.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "runtime/scheduler.h"
#include "text/tokenizer.h"

namespace whale::server {

struct TextDelta {
  std::string reasoning, content;
  bool empty() const { return reasoning.empty() && content.empty(); }
};

struct JobUsage {
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0, reasoning_tokens = 0;
};

struct JobOptions {
  std::vector<std::string> stop;
  bool split_reasoning = true;       // chat: reasoning goes to reasoning_content
  bool starts_in_reasoning = false;  // the prompt ends inside <think>
};

class GenerationJob {
 public:
  // Submits at once. Throws ApiError: 503 when the queue is full, 400 when the scheduler
  // rejects the request (e.g. the prompt does not fit the context).
  GenerationJob(Scheduler& sched, const Tokenizer& tok, GenRequest req, const JobOptions& opts);
  ~GenerationJob();  // cancels the generation if it is still running
  GenerationJob(const GenerationJob&) = delete;
  GenerationJob& operator=(const GenerationJob&) = delete;

  // Waits up to `wait` for new tokens and returns the text they make (possibly empty, e.g. a
  // held-back partial stop string). After the final event, done() is true.
  TextDelta next(std::chrono::milliseconds wait);
  bool done() const { return done_; }
  void cancel();

  // Valid once done().
  const std::string& finish_reason() const { return finish_reason_; }  // stop, length, cancelled, error
  const std::string& error() const { return error_; }
  const JobUsage& usage() const { return usage_; }

 private:
  struct Queue;
  std::shared_ptr<Queue> q_;  // shared with the scheduler's callback, which may outlive us
  Scheduler& sched_;
  Scheduler::Handle handle_ = 0;
  struct Pipeline;
  std::unique_ptr<Pipeline> pipe_;
  bool done_ = false;
  std::string finish_reason_, error_;
  JobUsage usage_;
};

}  // namespace whale::server
