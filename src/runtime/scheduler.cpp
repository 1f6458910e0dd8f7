// Continuous batching. One loop thread owns the model; each step it
//   1. admits queued requests into free slots while the KV pool can promise them their worst
//      case (prompt + max_tokens, capped at n_ctx) — after reusing cached prefix pages;
//   2. builds one batch within the per-step token budget (batch_tokens): first the pending
//      token of every decoding request, then chunks of up to prefill_chunk prompt tokens of the
//      requests still prefilling, oldest admission first, until the budget is spent;
//   3. runs Model::forward_batch once, samples each request with its own Sampler, registers
//      newly filled pages in the prefix cache, and delivers the events (outside the lock).
// Pages are promised at admission and allocated as positions are reached, so a running request
// never waits for memory and the pool never deadlocks; a request that could not fit even in an
// empty pool is refused at submit.
#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "runtime/kv_pool.h"

namespace whale {

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kRateWindowSeconds = 5.0;

struct Request {
  Scheduler::Handle id = 0;
  GenRequest req;
  std::function<void(const GenEvent&)> on_event;
  Sampler sampler;
  std::vector<int32_t> tokens;      // prompt, then generated; the last one's KV is pending
  int64_t prompt_len = 0;
  int64_t n_kv = 0;                 // positions whose KV rows are in the pages
  int64_t cached = 0;               // prompt tokens taken from the prefix cache
  int64_t generated = 0;
  std::vector<int32_t> pages;       // page table: position p lives in pages[p / page_tokens]
  std::vector<void*> k_ptr, v_ptr;  // the pages' base pointers, for KvBlocks
  int64_t promised = 0;             // pages promised at admission and not yet allocated
  int64_t n_registered = 0;         // leading pages registered in (or taken from) the prefix cache
  uint64_t chain_key = KvPagePool::kChainStart;  // key of the last registered page
  bool in_flight = false;           // part of the batch being computed (pages in use)
  bool cancel_requested = false;
  std::vector<float> logits;        // [V] of the last computed token

  Request(GenRequest r, std::function<void(const GenEvent&)> cb)
      : req(std::move(r)), on_event(std::move(cb)), sampler(req.sampling) {}
};
using RequestPtr = std::shared_ptr<Request>;

}  // namespace

struct Scheduler::Impl {
  Model& model;
  SchedulerOptions opts;
  KvPagePool pool;
  const int64_t P;  // positions per page

  mutable std::mutex mu;
  std::condition_variable wake;
  bool stop = false;
  Handle next_id = 1;
  std::deque<RequestPtr> queue;
  std::vector<RequestPtr> active;
  std::map<Handle, RequestPtr> live;  // queued or active
  std::vector<std::pair<RequestPtr, GenEvent>> events;  // to deliver, in order
  int64_t promised_total = 0;         // sum of `promised` over active requests
  // stats
  int64_t requests_total = 0, tokens_generated = 0, prompt_tokens = 0, cached_tokens = 0;
  int64_t steps = 0, max_step_tokens = 0;
  struct StepRecord {
    Clock::time_point begin, end;
    int64_t tokens;
  };
  std::deque<StepRecord> recent;

  std::thread loop_thread;

  Impl(Model& m, const SchedulerOptions& o);
  void loop();
  int64_t pages_needed(const Request& r) const;
  bool try_admit(const RequestPtr& r);
  void ensure_pages(Request& r, int64_t n_positions);
  void register_full_pages(Request& r);
  void finish(RequestPtr r, const std::string& reason, const std::string& error = {});
  void release_pages(Request& r);
  void deliver(std::unique_lock<std::mutex>& lock);
  void step(std::unique_lock<std::mutex>& lock);
};

namespace {

SchedulerOptions checked(SchedulerOptions o) {
  if (o.n_ctx < 2) fail("scheduler: n_ctx must be at least 2, got {}", o.n_ctx);
  if (o.parallel < 1) fail("scheduler: parallel must be at least 1, got {}", o.parallel);
  if (o.queue_max < 0) fail("scheduler: queue_max must not be negative, got {}", o.queue_max);
  if (o.prefill_chunk < 1) fail("scheduler: prefill_chunk must be at least 1, got {}", o.prefill_chunk);
  if (o.kv_page_tokens < 1) fail("scheduler: kv_page_tokens must be at least 1, got {}", o.kv_page_tokens);
  if (o.kv_tokens < 0) fail("scheduler: kv_tokens must not be negative, got {}", o.kv_tokens);
  if (o.batch_tokens < o.parallel)
    fail("scheduler: the batch of {} tokens cannot hold one decode token for each of {} slots "
         "(batch size must be at least parallel)", o.batch_tokens, o.parallel);
  if (o.kv_tokens == 0) o.kv_tokens = o.parallel * o.n_ctx;
  return o;
}

}  // namespace

Scheduler::Impl::Impl(Model& m, const SchedulerOptions& o)
    : model(m), opts(checked(o)),
      pool(m.config(), (opts.kv_tokens + opts.kv_page_tokens - 1) / opts.kv_page_tokens, opts.kv_page_tokens,
           opts.kv_type),
      P(opts.kv_page_tokens) {}

// Worst-case pages: the last sampled token is never fed back, so at most
// min(prompt + max_tokens, n_ctx) - 1 positions get KV rows.
int64_t Scheduler::Impl::pages_needed(const Request& r) const {
  const int64_t total = std::min(r.prompt_len + std::min(r.req.max_tokens, opts.n_ctx), opts.n_ctx);
  return (total - 1 + P - 1) / P;
}

bool Scheduler::Impl::try_admit(const RequestPtr& rp) {
  Request& r = *rp;
  // Longest cached prefix of full prompt pages; the last prompt token is always computed
  // (its logits give the first generated token).
  std::vector<int32_t> hits;
  std::vector<uint64_t> keys;
  uint64_t key = KvPagePool::kChainStart;
  int64_t idle_hits = 0;
  for (int64_t p = 0; (p + 1) * P <= r.prompt_len - 1; ++p) {
    std::span<const int32_t> toks(r.tokens.data() + p * P, size_t(P));
    const uint64_t k = KvPagePool::hash_page(key, toks);
    const int32_t page = pool.lookup(k, toks);
    if (page < 0) break;
    hits.push_back(page);
    keys.push_back(k);
    idle_hits += pool.is_cached_idle(page) ? 1 : 0;
    key = k;
  }
  const int64_t fresh = pages_needed(r) - int64_t(hits.size());
  if (fresh + idle_hits > pool.n_allocatable() - promised_total) return false;
  for (size_t i = 0; i < hits.size(); ++i) {
    pool.retain(hits[i]);
    r.pages.push_back(hits[i]);
    r.k_ptr.push_back(pool.k_base(hits[i]));
    r.v_ptr.push_back(pool.v_base(hits[i]));
  }
  r.n_registered = int64_t(hits.size());
  r.chain_key = key;
  r.n_kv = r.cached = int64_t(hits.size()) * P;
  r.promised = fresh;
  promised_total += fresh;
  cached_tokens += r.cached;
  r.logits.resize(size_t(model.config().n_vocab));
  return true;
}

void Scheduler::Impl::ensure_pages(Request& r, int64_t n_positions) {
  while (int64_t(r.pages.size()) * P < n_positions) {
    WHALE_ASSERT(r.promised > 0);  // admission promised every page the request can reach
    const int32_t page = pool.allocate();
    WHALE_ASSERT(page >= 0);
    --r.promised;
    --promised_total;
    r.pages.push_back(page);
    r.k_ptr.push_back(pool.k_base(page));
    r.v_ptr.push_back(pool.v_base(page));
  }
}

// Pages whose every row is computed join the prefix cache, in order, so the chain of keys
// matches what a later request with the same tokens computes.
void Scheduler::Impl::register_full_pages(Request& r) {
  while ((r.n_registered + 1) * P <= r.n_kv) {
    std::span<const int32_t> toks(r.tokens.data() + r.n_registered * P, size_t(P));
    r.chain_key = KvPagePool::hash_page(r.chain_key, toks);
    pool.register_page(r.pages[size_t(r.n_registered)], r.chain_key, toks);
    ++r.n_registered;
  }
}

void Scheduler::Impl::release_pages(Request& r) {
  for (int32_t p : r.pages) pool.release(p);
  r.pages.clear();
  r.k_ptr.clear();
  r.v_ptr.clear();
  promised_total -= r.promised;
  r.promised = 0;
}

// Frees the request at once and queues its final event. Caller holds the lock; the request
// must not be in flight.
void Scheduler::Impl::finish(RequestPtr rp, const std::string& reason, const std::string& error) {
  Request& r = *rp;
  WHALE_ASSERT(!r.in_flight);
  release_pages(r);
  auto it = std::find(active.begin(), active.end(), rp);
  if (it != active.end()) active.erase(it);
  auto q = std::find(queue.begin(), queue.end(), rp);
  if (q != queue.end()) queue.erase(q);
  live.erase(r.id);
  GenEvent ev;
  ev.done = true;
  ev.finish_reason = reason;
  ev.error = error;
  ev.prompt_tokens = r.prompt_len;
  ev.cached_tokens = r.cached;
  ev.generated = r.generated;
  events.emplace_back(rp, std::move(ev));
}

void Scheduler::Impl::deliver(std::unique_lock<std::mutex>& lock) {
  while (!events.empty()) {
    std::vector<std::pair<RequestPtr, GenEvent>> batch;
    batch.swap(events);
    lock.unlock();
    for (auto& [r, ev] : batch) {
      try {
        if (r->on_event) r->on_event(ev);
      } catch (...) {
        // A callback must not take the loop down; the request goes on (its owner can cancel).
      }
    }
    batch.clear();  // requests finished here are destroyed outside the lock
    lock.lock();
  }
}

void Scheduler::Impl::step(std::unique_lock<std::mutex>& lock) {
  struct Item {
    RequestPtr r;
    int64_t first, count;  // positions [first, first + count) computed this step
    std::vector<int32_t> pos;
  };
  std::vector<Item> items;
  int64_t budget = opts.batch_tokens;
  auto take = [&](const RequestPtr& rp, int64_t count) {
    Request& r = *rp;
    ensure_pages(r, r.n_kv + count);
    Item it{rp, r.n_kv, count, {}};
    for (int64_t p = r.n_kv; p < r.n_kv + count; ++p) it.pos.push_back(int32_t(p));
    r.in_flight = true;
    budget -= count;
    items.push_back(std::move(it));
  };
  // Decodes first: at most `parallel` of them, and the budget holds that many (checked).
  for (const RequestPtr& rp : active)
    if (rp->n_kv >= rp->prompt_len) {
      WHALE_ASSERT(int64_t(rp->tokens.size()) - rp->n_kv == 1);
      take(rp, 1);
    }
  // Then prompt chunks in admission order (`active` keeps it), so the oldest prompt always
  // advances and none starves; later ones wait for budget left over.
  for (const RequestPtr& rp : active) {
    if (budget <= 0) break;
    if (rp->n_kv >= rp->prompt_len) continue;
    const int64_t todo = int64_t(rp->tokens.size()) - rp->n_kv;
    take(rp, std::min({todo, opts.prefill_chunk, budget}));
  }
  WHALE_ASSERT(!items.empty() && budget >= 0);
  ++steps;
  max_step_tokens = std::max(max_step_tokens, opts.batch_tokens - budget);
  std::vector<SeqBatch> seqs;
  for (Item& it : items) {
    Request& r = *it.r;
    const bool reaches_end = it.first + it.count == int64_t(r.tokens.size());
    seqs.push_back(SeqBatch{.tokens = std::span<const int32_t>(r.tokens.data() + it.first, size_t(it.count)),
                            .positions = it.pos,
                            .kv = pool.blocks(r.k_ptr, r.v_ptr),
                            .logits = reaches_end ? r.logits.data() : nullptr,
                            .all_logits = false});
  }

  // The batch's requests keep their pages and token vectors while unlocked: cancel() only
  // marks in-flight requests, and nothing else touches them off the loop thread.
  lock.unlock();
  const auto t0 = Clock::now();
  std::string error;
  try {
    model.forward_batch(seqs);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const auto t1 = Clock::now();
  lock.lock();

  int64_t sampled = 0;
  const int64_t V = model.config().n_vocab;
  for (Item& it : items) {
    const RequestPtr& rp = it.r;
    Request& r = *rp;
    r.in_flight = false;
    if (!error.empty()) {
      finish(rp, "error", error);
      continue;
    }
    r.n_kv += it.count;
    register_full_pages(r);
    if (r.cancel_requested) {
      finish(rp, "cancelled");
      continue;
    }
    if (r.n_kv < int64_t(r.tokens.size())) continue;  // prompt chunk; more to come
    const int32_t tok = r.sampler.sample(r.logits.data(), V);
    ++sampled;
    const auto& stops = r.req.stop_tokens;
    if (std::find(stops.begin(), stops.end(), tok) != stops.end()) {
      finish(rp, "stop");
      continue;
    }
    r.tokens.push_back(tok);
    ++r.generated;
    ++tokens_generated;
    GenEvent ev;
    ev.token = tok;
    events.emplace_back(rp, std::move(ev));
    if (r.generated >= r.req.max_tokens || int64_t(r.tokens.size()) >= opts.n_ctx) finish(rp, "length");
  }
  recent.push_back({t0, t1, sampled});
  while (!recent.empty() && std::chrono::duration<double>(t1 - recent.front().end).count() > kRateWindowSeconds)
    recent.pop_front();
}

void Scheduler::Impl::loop() {
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    while (!stop && int64_t(active.size()) < opts.parallel && !queue.empty() && try_admit(queue.front())) {
      active.push_back(queue.front());
      queue.pop_front();
    }
    if (!events.empty()) {
      deliver(lock);
      continue;  // callbacks may have cancelled or submitted
    }
    if (stop) break;
    if (active.empty()) {
      wake.wait(lock);
      continue;
    }
    step(lock);
  }
  // Shutting down: nothing is in flight; everything left ends as cancelled.
  while (!active.empty()) finish(active.front(), "cancelled");
  while (!queue.empty()) finish(queue.front(), "cancelled");
  deliver(lock);
}

Scheduler::Scheduler(Model& model, const SchedulerOptions& opts)
    : impl_(std::make_unique<Impl>(model, opts)) {
  impl_->loop_thread = std::thread([this] { impl_->loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  impl_->loop_thread.join();
}

Scheduler::Handle Scheduler::submit(GenRequest req, std::function<void(const GenEvent&)> on_event) {
  Impl& s = *impl_;
  const int64_t n = int64_t(req.prompt.size()), V = s.model.config().n_vocab;
  if (n == 0) fail("the prompt is empty");
  if (n + 1 > s.opts.n_ctx)
    fail("the prompt has {} tokens; with one generated token that exceeds the context of {}", n, s.opts.n_ctx);
  if (req.max_tokens < 1) fail("max_tokens must be at least 1, got {}", req.max_tokens);
  for (int32_t t : req.prompt)
    if (t < 0 || t >= V) fail("prompt token id {} is outside the vocabulary (0..{})", t, V - 1);
  auto r = std::make_shared<Request>(std::move(req), std::move(on_event));
  r->tokens = r->req.prompt;
  r->prompt_len = n;
  const int64_t need = s.pages_needed(*r);
  if (need > s.pool.n_pages())
    fail("the request needs {} KV tokens but the KV budget is {} (raise the budget or lower max_tokens)",
         need * s.P, s.pool.n_pages() * s.P);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.stop) return 0;
    // Full: every slot taken and queue_max requests waiting (live = active + queued).
    if (int64_t(s.live.size()) >= s.opts.parallel + s.opts.queue_max) return 0;
    r->id = s.next_id++;
    s.live.emplace(r->id, r);
    s.queue.push_back(r);
    ++s.requests_total;
    s.prompt_tokens += n;
  }
  s.wake.notify_all();
  return r->id;
}

void Scheduler::cancel(Handle h) {
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.live.find(h);
    if (it == s.live.end()) return;  // finished already (or never existed)
    RequestPtr r = it->second;
    if (r->in_flight) r->cancel_requested = true;  // freed as soon as its step ends
    else s.finish(r, "cancelled");
  }
  s.wake.notify_all();
}

SchedulerStats Scheduler::stats() const {
  const Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mu);
  SchedulerStats st;
  st.active = int64_t(s.active.size());
  st.queued = int64_t(s.queue.size());
  st.requests_total = s.requests_total;
  st.tokens_generated = s.tokens_generated;
  st.prompt_tokens = s.prompt_tokens;
  st.cached_tokens = s.cached_tokens;
  st.kv_pages_used = s.pool.n_used();
  st.kv_pages_cached = s.pool.n_cached();
  st.kv_pages_total = s.pool.n_pages();
  st.kv_page_tokens = s.pool.page_tokens();
  st.steps = s.steps;
  st.max_step_tokens = s.max_step_tokens;
  // Sampled tokens over the steps of the last few seconds (0 once the scheduler is idle).
  const auto horizon = Clock::now() - std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(kRateWindowSeconds));
  int64_t toks = 0;
  Clock::time_point first{};
  bool any = false;
  for (const auto& r : s.recent) {
    if (r.end < horizon) continue;
    if (!any) first = r.begin;
    any = true;
    toks += r.tokens;
  }
  if (any) {
    const double span = std::chrono::duration<double>(s.recent.back().end - first).count();
    if (span > 0) st.decode_tokens_per_s = double(toks) / span;
  }
  return st;
}

}  // namespace whale
