#include "server/generation_job.h"

#include <condition_variable>
#include <deque>
#include <mutex>

#include "core/error.h"
#include "server/openai_protocol.h"
#include "server/stop_strings.h"
#include "text/reasoning.h"

namespace whale::server {

struct GenerationJob::Queue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<GenEvent> events;
};

struct GenerationJob::Pipeline {
  Pipeline(const Tokenizer& tok, const JobOptions& o)
      : decoder(tok, /*skip_special_tokens=*/false), stops(o.stop), split(o.starts_in_reasoning),
        split_reasoning(o.split_reasoning) {}
  StreamDecoder decoder;
  StopStringMatcher stops;
  ReasoningSplitter split;
  bool split_reasoning;

  void add(const std::string& text, TextDelta& out) {
    if (text.empty()) return;
    if (!split_reasoning) {
      out.content += text;
      return;
    }
    ReasoningDelta d = split.feed(text);
    out.reasoning += d.reasoning;
    out.content += d.content;
  }
};

GenerationJob::GenerationJob(Scheduler& sched, const Tokenizer& tok, GenRequest req, const JobOptions& opts)
    : q_(std::make_shared<Queue>()), sched_(sched), pipe_(std::make_unique<Pipeline>(tok, opts)) {
  usage_.prompt_tokens = int64_t(req.prompt.size());
  std::weak_ptr<Queue> wq = q_;
  auto on_event = [wq](const GenEvent& ev) {
    if (auto q = wq.lock()) {
      {
        std::lock_guard lk(q->mu);
        q->events.push_back(ev);
      }
      q->cv.notify_one();
    }
  };
  try {
    handle_ = sched_.submit(std::move(req), on_event);
  } catch (const whale::Error& e) {
    throw ApiError(400, e.what(), "", "invalid_request");
  }
  if (handle_ == 0)
    throw ApiError(503, "the server is busy (request queue full); retry later", "", "server_overloaded");
}

GenerationJob::~GenerationJob() {
  if (!done_ && handle_ != 0) sched_.cancel(handle_);
}

void GenerationJob::cancel() {
  if (!done_ && handle_ != 0) sched_.cancel(handle_);
}

TextDelta GenerationJob::next(std::chrono::milliseconds wait) {
  TextDelta out;
  if (done_) return out;
  std::deque<GenEvent> evs;
  {
    std::unique_lock lk(q_->mu);
    q_->cv.wait_for(lk, wait, [&] { return !q_->events.empty(); });
    evs.swap(q_->events);
  }
  for (const GenEvent& ev : evs) {
    if (ev.done) {
      done_ = true;
      usage_.prompt_tokens = ev.prompt_tokens;
      usage_.cached_tokens = ev.cached_tokens;
      if (!pipe_->stops.matched()) {
        usage_.completion_tokens = ev.generated;
        finish_reason_ = ev.finish_reason;
        error_ = ev.error;
        // Release what was held back: an incomplete character, a possible stop-string start,
        // a possible tag start.
        pipe_->add(pipe_->stops.feed(pipe_->decoder.flush()), out);
        pipe_->add(pipe_->stops.finish(), out);
      }
      if (pipe_->split_reasoning) {
        ReasoningDelta d = pipe_->split.finish();
        out.reasoning += d.reasoning;
        out.content += d.content;
      }
      break;
    }
    if (pipe_->stops.matched()) continue;  // tokens generated before our cancel took effect
    ++usage_.completion_tokens;
    if (pipe_->split_reasoning && pipe_->split.in_reasoning()) ++usage_.reasoning_tokens;
    pipe_->add(pipe_->stops.feed(pipe_->decoder.push(ev.token)), out);
    if (pipe_->stops.matched()) {
      finish_reason_ = "stop";
      sched_.cancel(handle_);  // the final event still comes (with the cached-token count)
    }
  }
  return out;
}

}  // namespace whale::server
