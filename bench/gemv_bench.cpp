// whale_gemv_bench: decode (one token) matmul speed with the weights coming from DRAM, as in
// token generation. The matrices have the shapes of R1-Distill-Qwen-1.5B's layers (q, k, v, o,
// gate, up, down) and there are enough layers (-l) that they do not fit in the caches; each
// rep runs one token through every matrix in layer order, as the model does. Reports the
// weight bytes read per wall second (the figure `whale bench` calls tg GB/s, minus the rest
// of the model's work).
//
// -c 1 instead runs one 512 x 1536 matrix (it stays in L2) 200 times per rep: the kernels'
// compute speed alone.
//
//   whale_gemv_bench [-t THREADS] [-r REPS] [-l LAYERS] [-T TYPES] [-c 0|1]   (TYPES e.g. q4k,q5k,q6k,q8_0,q5_0)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "kernels/matmul.h"
#include "kernels/quants.h"

using namespace whale;

namespace {

struct Shape {
  int64_t rows, cols;
};

constexpr Shape kLayer[] = {{1536, 1536}, {256, 1536}, {256, 1536}, {1536, 1536},
                            {8960, 1536}, {8960, 1536}, {1536, 8960}};

double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 7, layers = 12, in_cache = 0;
  std::string types_arg = "q4k,q6k,q8_0";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "-t") threads = std::atoi(argv[i + 1]);
    else if (f == "-r") reps = std::atoi(argv[i + 1]);
    else if (f == "-l") layers = std::atoi(argv[i + 1]);
    else if (f == "-T") types_arg = argv[i + 1];
    else if (f == "-c") in_cache = std::atoi(argv[i + 1]);
  }
  ThreadPool::set_default_threads(threads);
  std::vector<DType> types;
  if (types_arg.find("q4k") != std::string::npos) types.push_back(DType::Q4_K);
  if (types_arg.find("q5k") != std::string::npos) types.push_back(DType::Q5_K);
  if (types_arg.find("q6k") != std::string::npos) types.push_back(DType::Q6_K);
  for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1})
    if (types_arg.find(dtype_name(t)) != std::string::npos) types.push_back(t);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> x(8960), y(8960), row(8960);
  for (auto& v : x) v = u(rng);
  fmt::print("threads {}, {} layers of R1-Distill-Qwen-1.5B shapes; GB/s of weights, median of {}\n", threads,
             layers, reps);
  for (DType t : types) {
    // one buffer per matrix; random quants are as good as real ones for speed
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<Matrix> ms;
    uint64_t total = 0;
    const std::vector<Shape> shapes = in_cache ? std::vector<Shape>{{512, 1536}}
                                               : std::vector<Shape>(std::begin(kLayer), std::end(kLayer));
    const int n_sets = in_cache ? 1 : layers, passes = in_cache ? 200 : 1;
    for (int l = 0; l < n_sets; ++l) {
      for (const Shape& s : shapes) {
        const uint64_t rb = *dtype_bytes(t, uint64_t(s.cols));
        bufs.emplace_back(rb * uint64_t(s.rows));
        // a few distinct rows repeated: quantizing every row would take longer than the run
        for (int64_t r = 0; r < s.rows; ++r) {
          if (r < 4) {
            for (int64_t c = 0; c < s.cols; ++c) row[size_t(c)] = u(rng);
            quantize_row(t, row.data(), bufs.back().data() + rb * uint64_t(r), s.cols);
          } else {
            std::copy_n(bufs.back().data() + rb * uint64_t(r % 4), rb, bufs.back().data() + rb * uint64_t(r));
          }
        }
        Matrix m;
        m.dtype = t;
        m.rows = s.rows;
        m.cols = s.cols;
        m.data = bufs.back().data();
        m.row_bytes = rb;
        ms.push_back(m);
        total += rb * uint64_t(s.rows);
      }
    }
    std::vector<double> rates, cpu_rates;
    for (int r = 0; r < reps + 1; ++r) {
      const double t0 = now_s(), c0 = cpu_s();
      for (int pass = 0; pass < passes; ++pass)
        for (const Matrix& m : ms) matmul(m, x.data(), 1, m.cols, y.data(), m.rows);
      const double dt = now_s() - t0, dc = cpu_s() - c0;
      if (r > 0) {  // the first rep warms up
        rates.push_back(double(total) * passes / dt * 1e-9);
        cpu_rates.push_back(double(total) * passes / dc * 1e-9);
      }
    }
    std::sort(rates.begin(), rates.end());
    std::sort(cpu_rates.begin(), cpu_rates.end());
    // per CPU-second: what a shared machine's time slicing distorts less (busy threads only)
    fmt::print("{:>6} {:7.1f} MB  {:6.2f} GB/s  (min {:.2f} max {:.2f})  {:6.2f} GB per CPU-s\n", dtype_name(t),
               double(total) * 1e-6, rates[rates.size() / 2], rates.front(), rates.back(),
               cpu_rates[cpu_rates.size() / 2]);
  }
  return 0;
}
