// The thread pool: every index of every call runs exactly once, whether the workers are still
// spinning from the previous call or asleep on the condition variable; nested calls run on the
// calling thread; a pool is destroyed cleanly in either state.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/threadpool.h"

using whale::ThreadPool;

namespace {

// Runs parallel_for(n, grain) and checks that each index in [0, n) was visited once.
void expect_each_index_once(ThreadPool& pool, int64_t n, int64_t grain) {
  std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
  for (auto& s : seen) s.store(0);
  pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
    ASSERT_LE(e - b, grain);
    for (int64_t i = b; i < e; ++i) seen[size_t(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[size_t(i)].load(), 1) << "n " << n << " i " << i;
}

}  // namespace

TEST(ThreadPool, BackToBackCallsEachRunEveryIndexOnce) {
  ThreadPool pool(3);
  for (int call = 0; call < 5000; ++call) expect_each_index_once(pool, 1 + call % 97, 1 + call % 5);
}

TEST(ThreadPool, CallsAfterTheWorkersFellAsleep) {
  ThreadPool pool(3);
  for (int call = 0; call < 20; ++call) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past the spin window
    expect_each_index_once(pool, 64, 1);
  }
}

TEST(ThreadPool, WorkersShareTheWork) {
  ThreadPool pool(2);
  std::atomic<int> other_thread{0};
  const auto caller = std::this_thread::get_id();
  // Chunks that last long enough for the worker to join whether it was spinning or asleep.
  for (int call = 0; call < 20 && other_thread.load() == 0; ++call) {
    pool.parallel_for(8, 1, [&](int64_t, int64_t) {
      if (std::this_thread::get_id() != caller) other_thread.fetch_add(1);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  EXPECT_GT(other_thread.load(), 0);
}

TEST(ThreadPool, NestedCallsRunSeriallyOnTheCallingThread) {
  ThreadPool pool(3);
  std::atomic<int> nested_width_other_than_one{0}, wrong_thread{0}, total{0};
  pool.parallel_for(6, 1, [&](int64_t, int64_t) {
    if (pool.width() != 1) nested_width_other_than_one.fetch_add(1);
    const auto me = std::this_thread::get_id();
    pool.parallel_for(10, 3, [&](int64_t b, int64_t e) {
      if (std::this_thread::get_id() != me) wrong_thread.fetch_add(1);
      total.fetch_add(int(e - b));
    });
  });
  EXPECT_EQ(nested_width_other_than_one.load(), 0);
  EXPECT_EQ(wrong_thread.load(), 0);
  EXPECT_EQ(total.load(), 60);
  EXPECT_EQ(pool.width(), 3);
}

TEST(ThreadPool, DestroyedWhileSpinningOrAsleep) {
  for (int i = 0; i < 50; ++i) {
    ThreadPool pool(3);
    expect_each_index_once(pool, 16, 1);
    if (i % 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }  // the destructor joins the workers in either state
  SUCCEED();
}
