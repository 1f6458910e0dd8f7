// whale_attn_bench: time of one layer's attention at real shapes, the kernel in
// src/kernels/attention.* against the per-(token, head) loop it replaced (scores row of length
// T, softmax, weighted sum: kept here as the "before" baseline).
//
//   whale_attn_bench [-t THREADS] [-r REPS] [-d DEPTH ...] [--no-baseline] [--decode-only]
//                    [--cache-type f32|f16]   (f16: the kernel reads f16 rows; the baseline gets
//                                              the same values widened to f32)
// Shapes: DeepSeek-V2-Lite absorbed MLA (H 16, c 512, dr 64, 27 layers) and
// R1-Distill-Qwen-1.5B GQA (H 12, KV 2, dh 128, 28 layers). Decode: 1 query token at depth T.
// Prefill: 512 query tokens at positions T-512 .. T-1.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "kernels/attention.h"
#include "kernels/ops.h"
#include "model/kv_cache.h"
#include "core/dtype.h"

using namespace whale;

namespace {

struct Shape {
  const char* name;
  int64_t H, Hkv, dk, dv, layers;
  bool mla;
};

// The loop the kernel replaced (deepseek2.cpp / dense.cpp before): one query at a time.
void baseline(const Shape& s, const float* q, const float* k, const float* v, int64_t krow,
              int64_t vrow, const int32_t* pos, int64_t n, float scale, float* out,
              std::vector<float>& scores, int64_t T) {
  scores.resize(size_t(n * s.H * T));
  const int64_t G = s.H / s.Hkv;
  ThreadPool::global().parallel_for(n * s.H, 1, [&](int64_t b, int64_t e) {
    for (int64_t th = b; th < e; ++th) {
      const int64_t t = th / s.H, h = th % s.H, g = h / G, len = pos[t] + 1;
      const float* qh = q + th * s.dk;
      float* sc = scores.data() + th * T;
      for (int64_t u = 0; u < len; ++u) sc[u] = scale * dot_f32(qh, k + u * krow + g * (s.mla ? 0 : s.dk), s.dk);
      softmax_inplace(sc, len);
      float* o = out + th * s.dv;
      std::fill(o, o + s.dv, 0.0f);
      for (int64_t u = 0; u < len; ++u) {
        const float* vr = v + u * vrow + g * (s.mla ? 0 : s.dv);
        for (int64_t j = 0; j < s.dv; ++j) o[j] += sc[u] * vr[j];
      }
    }
  });
}

double cpu_seconds() {  // all threads of the process: robust to other load on a shared machine
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Timing {
  double wall_ms, cpu_ms;  // medians
};

template <class F>
Timing median_ms(int reps, F&& f) {
  std::vector<double> ms, cpu;
  f();  // warm-up
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    f();
    cpu.push_back(1e3 * (cpu_seconds() - c0));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  return {ms[ms.size() / 2], cpu[cpu.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 5;
  std::vector<int64_t> depths;
  bool skip_baseline = false, decode_only = false;
  DType cache_type = DType::F32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-baseline") skip_baseline = true;
    else if (a == "--decode-only") decode_only = true;
    else if (i + 1 < argc && (a == "--cache-type" || a == "-ctk")) cache_type = parse_kv_type(argv[++i]);
    else if (i + 1 < argc && a == "-t") threads = std::stoi(argv[++i]);
    else if (i + 1 < argc && a == "-r") reps = std::stoi(argv[++i]);
    else if (i + 1 < argc && a == "-d") depths.push_back(std::stoll(argv[++i]));
    else {
      fmt::print(stderr, "usage: whale_attn_bench [-t THREADS] [-r REPS] [-d DEPTH ...] [--no-baseline] [--decode-only] [--cache-type f32|f16]\n");
      return 1;
    }
  }
  if (depths.empty()) depths = {512, 4096};
  ThreadPool::set_default_threads(threads);
  fmt::print("attention ({} threads, {} inner loops, {} cache), median of {}\n", ThreadPool::global().size(),
             attention_isa(), dtype_name(cache_type), reps);
  fmt::print("| shape | test | T | before ms/layer | after ms/layer | speed-up | after GFLOP/s | after GFLOP per CPU-s | before GFLOP per CPU-s | after ms/token (all layers) |\n");
  fmt::print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  const Shape shapes[] = {{"V2-Lite MLA", 16, 1, 512 + 64, 512, 27, true},
                          {"Qwen-1.5B GQA", 12, 2, 128, 128, 28, false}};
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 1);
  for (const Shape& s : shapes)
    for (int64_t T : depths)
      for (int64_t n : {int64_t(1), int64_t(512)}) {
        if (n > T || (decode_only && n > 1)) continue;
        const int64_t krow = s.mla ? s.dk : s.Hkv * s.dk, vrow = s.mla ? s.dk : s.Hkv * s.dv;
        std::vector<float> q(size_t(n * s.H * s.dk)), k(size_t(T * krow)), v(s.mla ? 0 : size_t(T * vrow));
        for (auto* vec : {&q, &k, &v})
          for (float& x : *vec) x = nd(rng);
        std::vector<uint16_t> k16, v16;
        if (cache_type == DType::F16) {  // round the data to f16 so both sides see the same values
          for (auto* vec : {&k, &v})
            for (float& x : *vec) x = f16_to_f32(f32_to_f16(x));
          for (float x : k) k16.push_back(f32_to_f16(x));
          for (float x : v) v16.push_back(f32_to_f16(x));
        }
        const float* vp = s.mla ? k.data() : v.data();
        const bool f16 = cache_type == DType::F16;
        const void* kk = f16 ? static_cast<const void*>(k16.data()) : k.data();
        const void* vv = f16 ? (s.mla ? kk : static_cast<const void*>(v16.data())) : vp;
        std::vector<int32_t> pos(static_cast<size_t>(n));
        for (int64_t t = 0; t < n; ++t) pos[size_t(t)] = int32_t(T - n + t);
        std::vector<float> out(size_t(n * s.H * s.dv)), ref(out.size()), scores;
        const float scale = 1.0f / std::sqrt(float(s.dk));
        const KvBlock b{.k = kk, .v = vv, .rows = T, .k_stride = krow, .v_stride = vrow, .pos0 = 0, .type = cache_type};
        const AttnParams p{.n_tok = n, .n_head = s.H, .n_kv_head = s.Hkv, .dk = s.dk, .dv = s.dv,
                           .k_head_offset = s.mla ? 0 : s.dk, .v_head_offset = s.mla ? 0 : s.dv,
                           .q = q.data(), .q_tok_stride = s.H * s.dk, .q_head_stride = s.dk,
                           .pos = pos.data(), .scale = scale, .out = out.data(),
                           .o_tok_stride = s.H * s.dv, .o_head_stride = s.dv};
        const int r = n > 1 ? std::max(1, reps / 2) : reps;
        const Timing after = median_ms(r, [&] { attention(p, std::span(&b, 1)); });
        Timing before{0, 0};
        double err = 0;
        if (!skip_baseline) {
          before = median_ms(r, [&] { baseline(s, q.data(), k.data(), vp, krow, vrow, pos.data(), n, scale, ref.data(), scores, T); });
          for (size_t i = 0; i < out.size(); ++i) err = std::max(err, double(std::abs(out[i] - ref[i])));
        }
        double rows = 0;  // visible (query, row) pairs
        for (int64_t t = 0; t < n; ++t) rows += double(pos[size_t(t)] + 1);
        const double flop = 2.0 * double(s.H) * rows * double(s.dk + s.dv);
        fmt::print("| {} | {} | {} | {:.3f} | {:.3f} | {:.1f}x | {:.1f} | {:.1f} | {:.1f} | {:.1f} |{}\n", s.name,
                   n == 1 ? "decode" : "prefill 512", T, before.wall_ms, after.wall_ms,
                   before.wall_ms / after.wall_ms, flop / (after.wall_ms * 1e6), flop / (after.cpu_ms * 1e6),
                   before.cpu_ms > 0 ? flop / (before.cpu_ms * 1e6) : 0.0, after.wall_ms * double(s.layers),
                   err > 1e-4 ? fmt::format(" MISMATCH {:.2g}", err) : "");
      }
  return 0;
}
