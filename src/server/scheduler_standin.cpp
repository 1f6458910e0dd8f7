// TEMPORARY STAND-IN for the continuous-batching Scheduler (src/runtime/scheduler.h), so that
// `whale serve` runs before the real one is merged. DELETE THIS FILE when the real
// implementation lands: nothing depends on it beyond the scheduler.h interface.
//
// What it does instead of batching: one loop thread, `parallel` slots, each with its own
// Session (a private KV cache of n_ctx tokens). Every round it admits one queued request
// (prefill), then decodes ONE token for every active slot in turn (round-robin), so requests
// interleave fairly but each forward holds a single sequence.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "core/error.h"
#include "runtime/scheduler.h"
#include "runtime/session.h"

namespace whale {

namespace {
using Clock = std::chrono::steady_clock;
constexpr int64_t kStandinPageTokens = 16;  // pages reported in stats (one Session per slot)
}  // namespace

struct Scheduler::Impl {
  struct Job {
    Handle handle = 0;
    GenRequest req;
    std::function<void(const GenEvent&)> on_event;
  };
  struct Slot {
    std::unique_ptr<Session> session;
    std::unique_ptr<Sampler> sampler;
    Job job;
    bool busy = false;
    const float* logits = nullptr;
    int64_t generated = 0, prompt_tokens = 0, cached = 0;
  };

  Model& model;
  SchedulerOptions opts;
  std::vector<Slot> slots;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> queue;
  std::unordered_set<Handle> cancelled;  // handles to cancel at the next round
  Handle next_handle = 1;
  bool stopping = false;
  // Stats (under mu).
  int64_t requests_total = 0, tokens_generated = 0, prompt_tokens = 0, active = 0;
  std::vector<int64_t> slot_tokens;  // tokens each slot's cache holds while it is busy
  std::deque<Clock::time_point> recent_tokens;  // decode times within the last window
  std::thread loop_thread;

  Impl(Model& m, const SchedulerOptions& o) : model(m), opts(o) {
    if (opts.parallel < 1) fail("--parallel must be at least 1, got {}", opts.parallel);
    if (opts.n_ctx < 2) fail("the context must hold at least 2 tokens, got {}", opts.n_ctx);
    slots.resize(size_t(opts.parallel));
    slot_tokens.assign(slots.size(), 0);
    for (Slot& s : slots) s.session = std::make_unique<Session>(model, opts.n_ctx);
    loop_thread = std::thread([this] { loop(); });
  }

  ~Impl() {
    {
      std::lock_guard lk(mu);
      stopping = true;
    }
    cv.notify_all();
    loop_thread.join();
  }

  void set_slot_tokens(const Slot& s, int64_t n) {
    std::lock_guard lk(mu);
    slot_tokens[size_t(&s - slots.data())] = n;
  }

  void finish(Slot& s, const std::string& reason, const std::string& error = "") {
    {
      std::lock_guard lk(mu);
      --active;
      slot_tokens[size_t(&s - slots.data())] = 0;
    }
    GenEvent ev;
    ev.done = true;
    ev.finish_reason = reason;
    ev.error = error;
    ev.prompt_tokens = s.prompt_tokens;
    ev.cached_tokens = s.cached;
    ev.generated = s.generated;
    s.busy = false;
    s.sampler.reset();
    auto cb = std::move(s.job.on_event);
    s.job = Job{};
    cb(ev);
  }

  void start(Slot& s, Job job) {
    s.job = std::move(job);
    s.busy = true;
    s.generated = 0;
    s.prompt_tokens = int64_t(s.job.req.prompt.size());
    s.sampler = std::make_unique<Sampler>(s.job.req.sampling);
    {
      std::lock_guard lk(mu);
      ++active;
    }
    try {
      s.logits = s.session->prefill(s.job.req.prompt);
      s.cached = s.prompt_tokens - s.session->last_prefill_computed();
    } catch (const std::exception& e) {
      s.session->reset();
      finish(s, "error", e.what());
      return;
    }
    std::lock_guard lk(mu);
    prompt_tokens += s.prompt_tokens;
    slot_tokens[size_t(&s - slots.data())] = s.prompt_tokens;
  }

  // One token for slot s: sample from the last logits, report it, then run the model on it.
  void step(Slot& s) {
    const GenRequest& r = s.job.req;
    if (s.generated >= r.max_tokens) return finish(s, "length");
    const int32_t t = s.sampler->sample(s.logits, s.session->n_vocab());
    if (std::find(r.stop_tokens.begin(), r.stop_tokens.end(), t) != r.stop_tokens.end())
      return finish(s, "stop");
    ++s.generated;
    {
      std::lock_guard lk(mu);
      ++tokens_generated;
      recent_tokens.push_back(Clock::now());
    }
    GenEvent ev;
    ev.token = t;
    s.job.on_event(ev);
    if (s.generated >= r.max_tokens || int64_t(s.session->tokens().size()) >= s.session->n_ctx())
      return finish(s, "length");
    try {
      s.logits = s.session->decode(t);
      set_slot_tokens(s, int64_t(s.session->tokens().size()));
    } catch (const std::exception& e) {
      s.session->reset();
      finish(s, "error", e.what());
    }
  }

  void loop() {
    for (;;) {
      std::optional<Job> admit;
      std::vector<Handle> to_cancel;
      {
        std::unique_lock lk(mu);
        const bool any_busy = std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return s.busy; });
        cv.wait(lk, [&] { return stopping || !queue.empty() || !cancelled.empty() || any_busy; });
        if (stopping) break;
        // Cancellations of queued jobs are answered here; of running ones below.
        for (auto it = queue.begin(); it != queue.end();) {
          if (cancelled.erase(it->handle)) {
            Job j = std::move(*it);
            it = queue.erase(it);
            lk.unlock();
            GenEvent ev;
            ev.done = true;
            ev.finish_reason = "cancelled";
            ev.prompt_tokens = int64_t(j.req.prompt.size());
            j.on_event(ev);
            lk.lock();
          } else {
            ++it;
          }
        }
        to_cancel.assign(cancelled.begin(), cancelled.end());
        cancelled.clear();
        const bool free_slot = std::any_of(slots.begin(), slots.end(), [](const Slot& s) { return !s.busy; });
        if (free_slot && !queue.empty()) {
          admit = std::move(queue.front());
          queue.pop_front();
        }
      }
      for (Slot& s : slots)
        if (s.busy && std::find(to_cancel.begin(), to_cancel.end(), s.job.handle) != to_cancel.end())
          finish(s, "cancelled");
      if (admit) {
        // Prefer the free slot whose cached tokens share the longest prefix (multi-turn reuse).
        Slot* best = nullptr;
        size_t best_common = 0;
        for (Slot& s : slots) {
          if (s.busy) continue;
          const auto& have = s.session->tokens();
          size_t c = 0;
          while (c < have.size() && c < admit->req.prompt.size() && have[c] == admit->req.prompt[c]) ++c;
          if (!best || c > best_common) best = &s, best_common = c;
        }
        start(*best, std::move(*admit));
      }
      for (Slot& s : slots)
        if (s.busy) step(s);
    }
    // Shutting down: everything still running or waiting is cancelled.
    for (Slot& s : slots)
      if (s.busy) finish(s, "cancelled");
    std::deque<Job> rest;
    {
      std::lock_guard lk(mu);
      rest.swap(queue);
    }
    for (Job& j : rest) {
      GenEvent ev;
      ev.done = true;
      ev.finish_reason = "cancelled";
      j.on_event(ev);
    }
  }
};

Scheduler::Scheduler(Model& model, const SchedulerOptions& opts)
    : impl_(std::make_unique<Impl>(model, opts)) {}

Scheduler::~Scheduler() = default;

Scheduler::Handle Scheduler::submit(GenRequest req, std::function<void(const GenEvent&)> on_event) {
  if (req.prompt.empty()) fail("the prompt is empty");
  if (int64_t(req.prompt.size()) + 1 > impl_->opts.n_ctx)
    fail("the prompt has {} tokens; with the first generated token that exceeds the context of {}",
         req.prompt.size(), impl_->opts.n_ctx);
  const int64_t n_vocab = impl_->model.config().n_vocab;
  for (int32_t t : req.prompt)
    if (t < 0 || t >= n_vocab) fail("token id {} is outside the vocabulary of {}", t, n_vocab);
  std::lock_guard lk(impl_->mu);
  if (int64_t(impl_->queue.size()) >= impl_->opts.queue_max) return 0;
  const Handle h = impl_->next_handle++;
  impl_->queue.push_back(Impl::Job{h, std::move(req), std::move(on_event)});
  ++impl_->requests_total;
  impl_->cv.notify_all();
  return h;
}

void Scheduler::cancel(Handle h) {
  std::lock_guard lk(impl_->mu);
  impl_->cancelled.insert(h);
  impl_->cv.notify_all();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lk(impl_->mu);
  SchedulerStats st;
  st.active = impl_->active;
  st.queued = int64_t(impl_->queue.size());
  st.requests_total = impl_->requests_total;
  st.tokens_generated = impl_->tokens_generated;
  st.prompt_tokens = impl_->prompt_tokens;
  st.kv_page_tokens = kStandinPageTokens;
  st.kv_pages_total = impl_->opts.parallel * ((impl_->opts.n_ctx + kStandinPageTokens - 1) / kStandinPageTokens);
  for (int64_t n : impl_->slot_tokens) st.kv_pages_used += (n + kStandinPageTokens - 1) / kStandinPageTokens;
  const auto now = Clock::now();
  constexpr double kWindow = 5.0;
  auto& rt = impl_->recent_tokens;
  while (!rt.empty() && std::chrono::duration<double>(now - rt.front()).count() > kWindow) rt.pop_front();
  st.decode_tokens_per_s = double(rt.size()) / kWindow;
  return st;
}

}  // namespace whale
