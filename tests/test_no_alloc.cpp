// The token path allocates nothing: after a warm-up, Session::decode (a whole forward of one
// token, on the thread pool) and Sampler::sample make no heap allocation. This binary replaces
// the global operator new (and, with glibc outside sanitizer builds, malloc/calloc/realloc) by
// counting versions; counting is switched on only around the measured calls.
#include <gtest/gtest.h>

#include <execinfo.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <vector>

#include "core/threadpool.h"
#include "fixtures.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocs{0};
// WHALE_ALLOC_TRACE=1 prints where each counted allocation came from (build with -g to read it).
void count() {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  static const bool trace = std::getenv("WHALE_ALLOC_TRACE") != nullptr;
  if (trace) {
    g_counting = false;  // backtrace() may allocate once
    void* frames[16];
    const int n = backtrace(frames, 16);
    backtrace_symbols_fd(frames, n, 2);
    write(2, "----\n", 5);
    g_counting = true;
  }
}
void* counted_new(std::size_t n) {
  count();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* counted_new_aligned(std::size_t n, std::align_val_t a) {
  count();
  const std::size_t al = std::max(sizeof(void*), std::size_t(a));
  void* p = nullptr;
  if (posix_memalign(&p, al, n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_new(n); }
void* operator new[](std::size_t n) { return counted_new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted_new(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try { return counted_new(n); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_new_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define WHALE_COUNT_MALLOC 1
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* malloc(std::size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(std::size_t a, std::size_t b) {
  count();
  return __libc_calloc(a, b);
}
void* realloc(void* p, std::size_t n) {
  count();
  return __libc_realloc(p, n);
}
}
#endif

namespace whale {
namespace {

struct Counting {
  Counting() {
    g_allocs = 0;
    g_counting = true;
  }
  ~Counting() { g_counting = false; }
  int64_t allocs() const { return g_allocs.load(); }
};

TEST(NoAlloc, CounterSeesAllocations) {  // the test can fail
  Counting c;
  std::vector<int>* v = new std::vector<int>(100);
  const int64_t n = c.allocs();
  delete v;
  EXPECT_GE(n, 2);
#ifdef WHALE_COUNT_MALLOC
  Counting c2;
  void* p = std::malloc(64);
  EXPECT_EQ(c2.allocs(), 1);
  std::free(p);
#endif
}

class DecodeNoAlloc : public ::testing::TestWithParam<const char*> {};

TEST_P(DecodeNoAlloc, DecodeAndSampleAllocateNothing) {
  const std::string path = test::fixtures_dir() + "/models/" + GetParam() + "/model-q8_0.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no fixture " << path;
  // Two threads: the caller and a worker, and which of them runs which chunk is up to the
  // scheduler, so any scratch that grew inside a worker would show up here sooner or later.
  ThreadPool::set_default_threads(2);
  ASSERT_EQ(ThreadPool::global().size(), 2);
  auto model = load_model(path);
  // The decode steps cross position 512, where attention starts cutting the cache into row
  // segments (split-K) with their own partial-state scratch.
  Session s(*model, 560);
  Sampler greedy(SamplerParams{.temperature = 0});
  Sampler topk(SamplerParams{.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .seed = 3});
  Sampler full(SamplerParams{.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 4});
  std::vector<int32_t> prompt;
  for (int32_t i = 0; i < 505; ++i) prompt.push_back((i * 37 + 5) % 500);
  const float* logits = s.prefill(prompt);
  int32_t tok = 7;
  // warm-up: buffers sized for one token grow here
  for (int i = 0; i < 3; ++i) {
    tok = topk.sample(logits, s.n_vocab());
    greedy.sample(logits, s.n_vocab());
    full.sample(logits, s.n_vocab());
    logits = s.decode(tok);
  }
  for (int i = 0; i < 20; ++i) {  // deeper contexts must not grow anything either
    int64_t n;
    {
      Counting c;
      tok = topk.sample(logits, s.n_vocab());
      tok = (tok + greedy.sample(logits, s.n_vocab()) + full.sample(logits, s.n_vocab())) % 500;
      logits = s.decode(tok);
      n = c.allocs();
    }
    ASSERT_EQ(n, 0) << "decode step " << i << " at position " << s.tokens().size() - 1 << " allocated";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DecodeNoAlloc,
                         ::testing::Values("deepseek-v2-lite-tiny", "deepseek-v3-tiny",
                                           "r1-distill-qwen-tiny", "r1-distill-llama-tiny"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s) ch = ch == '-' ? '_' : ch;
                           return s;
                         });

}  // namespace
}  // namespace whale
