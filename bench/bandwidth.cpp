// whale_bandwidth: a small STREAM-like probe of the memory bandwidth a decode step can reach.
//   read:  sum of a buffer (what tg does to the weights)         bytes counted: N
//   copy:  b = a                                                 bytes counted: 2N
//   triad: a = b + s·c                                           bytes counted: 3N
// (Write-allocate traffic is not counted, as in STREAM.) Threads come from whale's thread
// pool, each owning one contiguous slice that it also first-touched (NUMA-local pages).
// Every test runs -r times after one warm-up; the median is reported.
//
//   whale_bandwidth [-t THREADS] [-s MIB] [-r REPS] [-o md|json]
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/threadpool.h"

namespace {

struct Args {
  int threads = 0;
  int64_t mib = 512;  // read buffer; copy/triad use three buffers of mib/2 each
  int reps = 7;
  std::string output = "md";
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr, "whale_bandwidth: error: %s\nusage: whale_bandwidth [-t THREADS] [-s MIB] [-r REPS] [-o md|json]\n", msg);
  std::exit(1);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      std::printf("whale_bandwidth [-t THREADS] [-s MIB (default 512)] [-r REPS (default 7)] [-o md|json]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) usage(("missing value after " + k).c_str());
    const std::string v = argv[++i];
    char* end = nullptr;
    const long n = std::strtol(v.c_str(), &end, 10);
    const bool num = end && *end == 0 && !v.empty();
    if (k == "-t" && num && n > 0) a.threads = int(n);
    else if (k == "-s" && num && n >= 8) a.mib = n;
    else if (k == "-r" && num && n > 0) a.reps = int(n);
    else if (k == "-o" && (v == "md" || v == "json")) a.output = v;
    else usage(("bad option " + k + " " + v).c_str());
  }
  return a;
}

using Clock = std::chrono::steady_clock;

// Runs body(part, begin, end) on every thread's slice of [0, n) and returns the wall time.
template <class F>
double timed(whale::ThreadPool& pool, int64_t n, F&& body) {
  const int64_t parts = pool.size();
  const auto t0 = Clock::now();
  pool.parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) body(p, n * p / parts, n * (p + 1) / parts);
  });
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  if (a.threads > 0) whale::ThreadPool::set_default_threads(a.threads);
  whale::ThreadPool& pool = whale::ThreadPool::global();

  // 64-bit words: integer sums vectorise without -ffast-math.
  const int64_t n_read = a.mib * (1 << 20) / 8, n3 = n_read / 2;
  auto alloc = [](int64_t n) { return std::unique_ptr<uint64_t[]>(new uint64_t[size_t(n)]); };
  auto r = alloc(n_read);
  auto x = alloc(n3), y = alloc(n3), z = alloc(n3);
  timed(pool, n_read, [&](int64_t, int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) r[i] = uint64_t(i); });
  timed(pool, n3, [&](int64_t, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] = uint64_t(i), y[i] = 2, z[i] = uint64_t(i) * 3;
  });

  std::vector<uint64_t> sink(size_t(pool.size()) * 8, 0);  // per-slice sums, one cache line apart
  struct Test {
    const char* name;
    double bytes;
    std::vector<double> secs;
  };
  std::vector<Test> tests = {{"read", 8.0 * double(n_read), {}},
                             {"copy", 16.0 * double(n3), {}},
                             {"triad", 24.0 * double(n3), {}}};
  for (int rep = -1; rep < a.reps; ++rep) {  // rep -1: warm-up
    const double t_read = timed(pool, n_read, [&](int64_t part, int64_t b, int64_t e) {
      uint64_t sum = 0;  // an integer reduction: -O3 vectorises it
      for (int64_t i = b; i < e; ++i) sum += r[i];
      sink[size_t(part) * 8] += sum;
    });
    const double t_copy = timed(pool, n3, [&](int64_t, int64_t b, int64_t e) {
      std::memcpy(&y[b], &x[b], size_t(e - b) * 8);
    });
    const double t_triad = timed(pool, n3, [&](int64_t, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) x[i] = y[i] + 3 * z[i];
    });
    if (rep < 0) continue;
    tests[0].secs.push_back(t_read);
    tests[1].secs.push_back(t_copy);
    tests[2].secs.push_back(t_triad);
  }
  uint64_t check = 0;
  for (uint64_t s : sink) check += s;

  if (a.output == "md") {
    fmt::print("| test  | threads | MiB  | GB/s (median of {}) | min..max GB/s |\n", a.reps);
    fmt::print("| ----- | ------: | ---: | ------------------: | ------------: |\n");
  }
  for (const Test& t : tests) {
    const double med = t.bytes / median(t.secs) / 1e9;
    const double lo = t.bytes / *std::max_element(t.secs.begin(), t.secs.end()) / 1e9;
    const double hi = t.bytes / *std::min_element(t.secs.begin(), t.secs.end()) / 1e9;
    if (a.output == "md") {
      fmt::print("| {:<5} | {:>7} | {:>4} | {:>19.2f} | {:>6.1f}..{:<6.1f} |\n", t.name, pool.size(),
                 int64_t(t.bytes / (1 << 20)), med, lo, hi);
      continue;
    }
    std::vector<double> gbps;
    for (double s : t.secs) gbps.push_back(t.bytes / s / 1e9);
    nlohmann::ordered_json j = {{"test", t.name}, {"threads", pool.size()}, {"bytes", t.bytes},
                                {"gbps_median", med}, {"samples_gbps", gbps}};
    fmt::print("{}\n", j.dump());
  }
  if (check == 42) std::fprintf(stderr, " ");  // keeps the read loop from being optimised away
  return 0;
}
