#include "core/threadpool.h"

#include <algorithm>
#include <memory>

namespace whale {

namespace {
thread_local bool t_in_pool_task = false;
int g_default_threads = 0;
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

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
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
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return busy_ == 0; });  // a late worker may still be leaving
    fn_ = fn;
    n_ = n;
    grain_ = grain;
    next_.store(0);
    ++generation_;
  }
  wake_.notify_all();
  run_chunks();
  std::unique_lock<std::mutex> lock(mu_);
  // Workers that woke for this generation finish their chunks; the counter is exhausted, so
  // a late-waking worker finds nothing to do.
  done_.wait(lock, [&] { return busy_ == 0; });
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
