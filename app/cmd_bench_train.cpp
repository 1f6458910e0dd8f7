// whale bench-train --config BENCH.json [-t N] [-r 5] [--warmup 2]
// Training-step throughput of the gradient engine: a model of BENCH.json's "config" (Hugging
// Face config.json keys) with seeded random weights, a random batch of "batch" × "seq" tokens,
// MTP weight "lambda_mtp"; times forward_backward (the optimizer step is not included) and
// prints the median seconds per step, tokens/s and peak RSS.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "file_io.h"
#include "train/train_model.h"

namespace whale::app {

namespace {

struct BenchTrainArgs {
  std::string config;
  int threads = 0, reps = 5, warmup = 2;
};

void run_bench_train(const BenchTrainArgs& a) {
  train::retain_freed_memory();
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  if (a.reps < 1 || a.warmup < 0) fail("-r must be >= 1 and --warmup >= 0");
  const nlohmann::json j = nlohmann::json::parse(read_file(a.config), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("config") || !j["config"].is_object())
    fail("{}: needs a \"config\" object (and \"batch\", \"seq\")", a.config);
  // config_from_hf_json reads a file: hand it the "config" object through a temporary one.
  const auto tmp = std::filesystem::temp_directory_path() /
                   fmt::format("whale_bench_train_{}.json", ::getpid());
  std::ofstream(tmp) << j["config"].dump();
  ModelConfig cfg;
  try {
    cfg = config_from_hf_json(tmp.string());
  } catch (...) {
    std::filesystem::remove(tmp);
    throw;
  }
  std::filesystem::remove(tmp);
  const int64_t B = j.value("batch", int64_t(4)), T = j.value("seq", int64_t(256));
  const float lambda = j.value("lambda_mtp", 0.3f);
  if (B < 1 || T < 1) fail("{}: batch and seq must be positive", a.config);

  auto model = train::init_train_model(cfg, 42);
  train::Batch batch{B, T, {}, {}};
  std::mt19937_64 rng(7);
  for (int64_t i = 0; i < B * T + B; ++i) batch.tokens.push_back(int32_t(rng() % uint64_t(cfg.n_vocab)));
  for (int64_t b = 0; b < B; ++b)  // targets: the next token of the same stream
    for (int64_t t = 0; t < T; ++t) batch.targets.push_back(batch.tokens[size_t(b * (T + 1) + t + 1)]);
  std::vector<int32_t> toks;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) toks.push_back(batch.tokens[size_t(b * (T + 1) + t)]);
  batch.tokens = toks;

  int64_t n_params = 0;
  for (const auto& p : model->params()) n_params += int64_t(p.value.size());
  fmt::print(stderr, "bench-train: {} params, {} x {} tokens, {} threads\n", n_params, B, T,
             ThreadPool::global().size());
  auto cpu_seconds = [] {  // user + system time of the whole process (all threads)
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
  };
  std::vector<double> secs, cpu;
  double loss = 0;
  for (int r = 0; r < a.warmup + a.reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    loss = model->forward_backward(batch, lambda).loss_total;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r >= a.warmup) secs.push_back(s), cpu.push_back(cpu_seconds() - c0);
  }
  std::sort(cpu.begin(), cpu.end());
  std::sort(secs.begin(), secs.end());
  const double median = secs[secs.size() / 2];
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  fmt::print("step (forward+backward) median {:.3f} s over {} reps (min {:.3f}, max {:.3f})\n",
             median, secs.size(), secs.front(), secs.back());
  fmt::print("tokens/s {:.1f}\n", double(B * T) / median);
  // On a shared machine the wall clock includes time spent waiting for a core; CPU time per
  // step divided by the thread count is what the step costs when the threads have the cores.
  const double cpu_median = cpu[cpu.size() / 2];
  const int threads = ThreadPool::global().size();
  fmt::print("cpu s/step {:.3f} (all threads); tokens/s at full cores {:.1f}\n", cpu_median,
             double(B * T) * threads / cpu_median);
  fmt::print("peak RSS {:.1f} MiB\n", double(ru.ru_maxrss) / 1024.0);
  fmt::print("loss_total {:.6f}\n", loss);
}

}  // namespace

void register_bench_train(CLI::App& app) {
  auto a = std::make_shared<BenchTrainArgs>();
  CLI::App* cmd = app.add_subcommand("bench-train", "training-step throughput (forward + backward)");
  cmd->add_option("--config", a->config, "benchmark JSON ({\"config\": {...}, \"batch\", \"seq\", \"lambda_mtp\"})")->required();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_option("-r,--reps", a->reps, "timed steps (default 5)");
  cmd->add_option("--warmup", a->warmup, "untimed steps first (default 2)");
  cmd->callback([a] { run_bench_train(*a); });
}

}  // namespace whale::app
