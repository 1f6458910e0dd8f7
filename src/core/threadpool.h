// One process-wide pool of worker threads. parallel_for splits [0, n) into chunks that the
// caller and the workers take from a shared counter; it returns when all chunks are done.
// Nested calls from inside a task run serially on the calling thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace whale {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // total threads including the caller; >= 1
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }
  // Threads a parallel_for issued from the calling thread would use: 1 inside a pool task
  // (nested calls run serially there), else size().
  int width() const;

  // fn(begin, end) over chunks of at most `grain` items. Takes any callable by reference
  // (no std::function: wrapping a capturing lambda would allocate on every call, and the
  // token path must not allocate).
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    run({const_cast<void*>(static_cast<const void*>(std::addressof(fn))),
         [](void* obj, int64_t b, int64_t e) { (*static_cast<Fn*>(obj))(b, e); }},
        n, grain);
  }

  // The process-wide pool (created on first use with set_default_threads' value, default
  // the hardware concurrency).
  static ThreadPool& global();
  static void set_default_threads(int n);

 private:
  struct Task {  // a borrowed callable
    void* obj;
    void (*call)(void*, int64_t, int64_t);
    void operator()(int64_t b, int64_t e) const { call(obj, b, e); }
  };
  void run(Task fn, int64_t n, int64_t grain);
  void worker_loop();
  void run_chunks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  // Written under mu_; atomic so that waiting threads can spin on them without the lock.
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> busy_{0};
  int sleepers_ = 0;  // workers blocked on wake_ (the caller notifies only then)
  // current job
  Task fn_{nullptr, nullptr};
  int64_t n_ = 0, grain_ = 1;
  std::atomic<int64_t> next_{0};
};

}  // namespace whale
