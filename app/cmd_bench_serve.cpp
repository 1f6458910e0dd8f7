// whale bench-serve -m PATH [--parallel 1,4,8] [-p 16] [-n 64] [-t N]
// Aggregate throughput of the continuous-batching scheduler: for each --parallel value P, P
// concurrent greedy requests (random prompts of -p tokens, -n generated tokens each, no stop
// token) go through one Scheduler with P slots. Reported per P: wall time, generated tokens/s
// over the whole run, decode tokens/s measured from the moment every request has its first
// token to the last token (prefill excluded), the decode step time that implies (P tokens per
// step), the same step as one bare Model::forward_batch of P one-token sequences without the
// scheduler (what the scheduler adds is the difference), and the mean time to first token.
// (`whale bench -p P` is one sequence of P tokens: it computes logits for one row, a decode
// step for P rows, so it is the cheaper of the two by P - 1 rows of lm_head.)
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>

#include "cache_type.h"
#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "runtime/kv_pool.h"
#include "runtime/scheduler.h"

namespace whale::app {

namespace {

struct BenchServeArgs {
  std::string model;
  std::vector<int64_t> parallel = {1, 4, 8};
  int64_t n_prompt = 16, n_gen = 64;
  int64_t batch = 512;
  int threads = 0;
  std::string cache_type;
};

using Clock = std::chrono::steady_clock;

// The floor for a decode step of P requests: one Model::forward_batch of P one-token sequences
// (each with its own logits, at position `pos` over paged KV) with no scheduler, sampling or
// callbacks around it. Median of `reps` runs, in ms. The KV rows it attends over are whatever
// the fresh pages hold: only the time matters here.
double bare_decode_step_ms(Model& model, int64_t P, int64_t pos, int reps, KvType kv_type) {
  const int64_t page_tokens = 16, pages_per_seq = pos / page_tokens + 1, V = model.config().n_vocab;
  KvPagePool pool(model.config(), P * pages_per_seq, page_tokens, kv_type);
  std::vector<std::vector<void*>> k(static_cast<size_t>(P)), v(static_cast<size_t>(P));
  for (int64_t i = 0; i < P; ++i)
    for (int64_t j = 0; j < pages_per_seq; ++j) {
      const int32_t page = pool.allocate();
      k[size_t(i)].push_back(pool.k_base(page));
      v[size_t(i)].push_back(pool.v_base(page));
    }
  std::vector<int32_t> tokens(static_cast<size_t>(P)), positions(1, int32_t(pos));
  for (int64_t i = 0; i < P; ++i) tokens[size_t(i)] = int32_t((i * 7919) % V);
  std::vector<float> logits(size_t(P * V));
  std::vector<SeqBatch> seqs;
  for (int64_t i = 0; i < P; ++i)
    seqs.push_back(SeqBatch{.tokens = std::span<const int32_t>(&tokens[size_t(i)], 1), .positions = positions,
                            .kv = pool.blocks(k[size_t(i)], v[size_t(i)]), .logits = logits.data() + i * V});
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    model.forward_batch(seqs);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void run_bench_serve(const BenchServeArgs& a) {
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  if (a.n_prompt < 1 || a.n_gen < 2) fail("bench-serve: need -p >= 1 and -n >= 2");
  auto model = load_model(a.model);
  const int64_t V = model->config().n_vocab;
  fmt::print("model {}, {} threads, prompt {} tokens, {} generated per request\n", a.model,
             ThreadPool::global().size(), a.n_prompt, a.n_gen);
  fmt::print("| parallel | wall s | total t/s | decode t/s | decode ms/step | bare forward ms | mean TTFT s |\n"
             "|---:|---:|---:|---:|---:|---:|---:|\n");
  std::mt19937_64 rng(1);
  for (int64_t P : a.parallel) {
    if (P < 1) fail("bench-serve: --parallel values must be >= 1, got {}", P);
    std::mutex mu;  // declared before the scheduler: its callbacks use them
    std::condition_variable cv;
    int64_t done = 0, first_tokens = 0, tokens = 0, tokens_at_all_first = 0;
    double ttft_sum = 0;
    Clock::time_point all_first, last;
    Scheduler sched(*model, SchedulerOptions{.n_ctx = a.n_prompt + a.n_gen, .parallel = P,
                                             .queue_max = 0, .prefill_chunk = 512,
                                             .batch_tokens = std::max(a.batch, P),
                                             .kv_type = cache_type_or(a.cache_type, DType::F16)});
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < P; ++i) {
      GenRequest r;
      for (int64_t j = 0; j < a.n_prompt; ++j) r.prompt.push_back(int32_t(rng() % uint64_t(V)));
      r.max_tokens = a.n_gen;
      r.sampling.temperature = 0;
      auto first = std::make_shared<bool>(true);
      const auto h = sched.submit(r, [&, first](const GenEvent& ev) {
        std::lock_guard<std::mutex> lock(mu);
        const auto now = Clock::now();
        if (ev.done) {
          ++done;
          cv.notify_all();
          return;
        }
        ++tokens;
        last = now;
        if (*first) {
          *first = false;
          ttft_sum += std::chrono::duration<double>(now - t0).count();
          if (++first_tokens == P) {
            all_first = now;
            tokens_at_all_first = tokens;
          }
        }
      });
      if (h == 0) fail("bench-serve: the scheduler refused a request");
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done == P; });
    const double wall = std::chrono::duration<double>(last - t0).count();
    const double decode = std::chrono::duration<double>(last - all_first).count();
    // Every step of the decode phase advances each of the P requests by one token.
    const double decode_tps = double(tokens - tokens_at_all_first) / std::max(decode, 1e-9);
    lock.unlock();
    const double bare = bare_decode_step_ms(*model, P, a.n_prompt + a.n_gen / 2, 3, cache_type_or(a.cache_type, DType::F16));
    fmt::print("| {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.3f} |\n", P, wall, double(tokens) / wall,
               decode_tps, 1e3 * double(P) / std::max(decode_tps, 1e-9), bare, ttft_sum / double(P));
  }
}

}  // namespace

void register_bench_serve(CLI::App& app) {
  auto a = std::make_shared<BenchServeArgs>();
  CLI::App* cmd = app.add_subcommand("bench-serve", "measure aggregate throughput of the batching scheduler");
  cmd->add_option("-m,--model", a->model, "GGUF file or Hugging Face folder")->required();
  cmd->add_option("--parallel", a->parallel, "concurrent requests (= slots), one run per value")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("-p,--n-prompt", a->n_prompt, "prompt tokens per request")->capture_default_str();
  cmd->add_option("-n,--n-gen", a->n_gen, "generated tokens per request")->capture_default_str();
  cmd->add_option("-b,--batch-size", a->batch, "most tokens per step (raised to --parallel when below)")
      ->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  add_cache_type_option(cmd, &a->cache_type);
  cmd->callback([a] { run_bench_serve(*a); });
}

}  // namespace whale::app
