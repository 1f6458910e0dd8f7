#include "core/threadpool.h"

#include <algorithm>
#include <chrono>
#include <memory>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace whale {

namespace {
thread_local bool t_in_pool_task = false;
int g_default_threads = 0;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  n_threads = std::max(1, n_threads);
  for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks() {
  t_in_pool_task = true;
  for (;;) {
    int64_t begin = next_.fetch_add(grain_);
    if (begin >= n_) break;
    fn_(begin, std::min(n_, begin + grain_));
  }
  t_in_pool_task = false;
}

// Spins until pred() holds or about kSpin has passed. The parallel_fors of a
// training or decode step follow each other within microseconds, while a thread blocked in
// futex_wait takes tens of microseconds to wake in a VM (an IPI to another vCPU), paid by the
// worker at the start and by the caller at the end of every call: on this project's 2-vCPU
// VM, 42 -> 24 us per call of a parallel_for with ~15 us of work. The bound keeps an idle
// pool (a server between requests) from burning a core.
template <class Pred>
void spin_until(Pred pred) {
  using clock = std::chrono::steady_clock;
  constexpr auto kSpin = std::chrono::microseconds(100);
  const auto start = clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return;
      cpu_relax();
    }
    if (clock::now() - start > kSpin) return;
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  const auto job_or_stop = [&] { return stop_ || generation_ != seen; };
  for (;;) {
    spin_until(job_or_stop);
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!job_or_stop()) {  // checked again under the lock: the caller notifies sleepers only
        ++sleepers_;
        wake_.wait(lock, job_or_stop);
        --sleepers_;
      }
      if (stop_) return;
      seen = generation_;
      ++busy_;
    }
    run_chunks();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--busy_ == 0) done_.notify_all();
    }
  }
}

void ThreadPool::run(Task fn, int64_t n, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || t_in_pool_task || n <= grain) {
    for (int64_t b = 0; b < n; b += grain) fn(b, std::min(n, b + grain));
    return;
  }
  const auto idle = [&] { return busy_ == 0; };
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, idle);  // a late worker may still be leaving
    fn_ = fn;
    n_ = n;
    grain_ = grain;
    next_.store(0);
    ++generation_;
    if (sleepers_ > 0) wake_.notify_all();
  }
  run_chunks();
  spin_until(idle);
  std::unique_lock<std::mutex> lock(mu_);
  // Workers that woke for this generation finish their chunks; the counter is exhausted, so
  // a late-waking worker finds nothing to do.
  done_.wait(lock, idle);
  fn_ = Task{nullptr, nullptr};
}

int ThreadPool::width() const { return t_in_pool_task ? 1 : size(); }

void ThreadPool::set_default_threads(int n) { g_default_threads = n; }

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(g_default_threads > 0
                             ? g_default_threads
                             : int(std::max(1u, std::thread::hardware_concurrency())));
  return pool;
}

}  // namespace whale
