// whale_gemm_bench: speed of the fast (8-bit activation) matmul alone, in GMAC per CPU-second
// (= per core while the threads are busy), for each quantized weight type and batch size.
// CPU time, not wall time, so a shared machine distorts it less.
//
//   whale_gemm_bench [-t THREADS] [-r REPS] [-m MIN_SECONDS] [-w TYPE] [-n N_TOK] [--rows R] [--cols C]
// Shape: rows 1536, cols 8960 (R1-Distill-Qwen-1.5B's down projection, ~13.8 M weights) unless
// --rows / --cols say otherwise; -w and -n keep one weight type / one batch size (for A/B runs).
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "kernels/matmul.h"
#include "kernels/quants.h"

using namespace whale;

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 3;
  double min_s = 0.3;
  int64_t rows = 1536, cols = 8960, only_n = 0;
  std::string only_type;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "-t") threads = std::atoi(argv[i + 1]);
    else if (f == "-r") reps = std::atoi(argv[i + 1]);
    else if (f == "-m") min_s = std::atof(argv[i + 1]);
    else if (f == "-w") only_type = argv[i + 1];
    else if (f == "-n") only_n = std::atoll(argv[i + 1]);
    else if (f == "--rows") rows = std::atoll(argv[i + 1]);
    else if (f == "--cols") cols = std::atoll(argv[i + 1]);
  }
  ThreadPool::set_default_threads(threads);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> row(static_cast<size_t>(cols)), x(static_cast<size_t>(std::max<int64_t>(512, only_n) * cols)),
      y(static_cast<size_t>(std::max<int64_t>(512, only_n) * rows));
  for (auto& v : x) v = u(rng);
  fmt::print("threads {}, W {}x{}; GMAC per CPU-second, median of {}\n", threads, rows, cols, reps);
  fmt::print("{:6}", "n_tok");
  std::vector<DType> types;
  for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1})
    if (only_type.empty() || only_type == dtype_name(t)) types.push_back(t);
  for (DType t : types) fmt::print(" {:>8}", dtype_name(t));
  fmt::print("\n");
  std::vector<std::vector<uint8_t>> w;
  for (DType t : types) {
    const uint64_t rb = *dtype_bytes(t, uint64_t(cols));
    w.emplace_back(rb * rows);
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& v : row) v = u(rng);
      quantize_row(t, row.data(), w.back().data() + rb * uint64_t(r), cols);
    }
  }
  std::vector<int64_t> batches = {1, 2, 4, 8, 16, 32, 64, 128, 512};
  if (only_n > 0) batches = {only_n};
  for (int64_t n : batches) {
    fmt::print("{:6}", n);
    for (size_t k = 0; k < types.size(); ++k) {
      Matrix m;
      m.dtype = types[k];
      m.rows = rows;
      m.cols = cols;
      m.data = w[k].data();
      m.row_bytes = *dtype_bytes(types[k], uint64_t(cols));
      std::vector<double> rates;
      for (int r = 0; r < reps; ++r) {
        const double c0 = cpu_seconds();
        int64_t calls = 0;
        while (cpu_seconds() - c0 < min_s || calls == 0) {
          matmul(m, x.data(), n, cols, y.data(), rows);
          ++calls;
        }
        rates.push_back(double(calls) * double(n) * double(rows * cols) / (cpu_seconds() - c0) * 1e-9);
      }
      std::sort(rates.begin(), rates.end());
      fmt::print(" {:8.1f}", rates[rates.size() / 2]);
    }
    fmt::print("\n");
  }
}
