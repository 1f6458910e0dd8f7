// whale bench-tokenizer -m PATH -f FILE [-r REPS] [--special]
//
// Tokenizer throughput on one thread: encodes the whole file REPS times and prints one JSON line
//   {"model", "bytes", "tokens", "reps", "cold_mb_s", "warm_mb_s", "cold_s": [...], "warm_s": [...],
//    "load_s"}
// MB = 10^6 bytes; the MB/s values are medians. Each rep loads the tokenizer afresh (not timed)
// and encodes twice: "cold" is the first encode, with the word cache empty; "warm" the second,
// with the cache the first one filled. add_special_tokens is false unless --special.
// PATH is what `whale tokenize -m` takes (tokenizer folder, HF folder or GGUF file).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>

#include "commands.h"
#include "core/error.h"
#include "text/chat.h"

namespace whale::app {

namespace {

struct BenchTokenizerArgs {
  std::string model, file;
  int reps = 5;
  bool special = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void run_bench_tokenizer(const BenchTokenizerArgs& a) {
  if (a.reps < 1) fail("--reps must be at least 1");
  std::ifstream in(a.file, std::ios::binary);
  if (!in) fail("{}: cannot open", a.file);
  const std::string text(std::istreambuf_iterator<char>(in), {});

  std::vector<double> load, cold, warm;
  size_t n_tokens = 0;
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 2);
  for (int r = 0; r < a.reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    TextAssets assets = load_text_assets(a.model);
    load.push_back(seconds_since(t0));
    for (auto* times : {&cold, &warm}) {
      ids.clear();
      t0 = std::chrono::steady_clock::now();
      assets.tokenizer->encode_into(text, a.special, ids);
      times->push_back(seconds_since(t0));
      if (n_tokens && ids.size() != n_tokens) fail("encode is not deterministic ({} vs {} tokens)", ids.size(), n_tokens);
      n_tokens = ids.size();
    }
  }
  const double mb = text.size() / 1e6;
  auto list = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += fmt::format("{}{:.4f}", s.empty() ? "" : ", ", x);
    return "[" + s + "]";
  };
  fmt::print(R"({{"model": {}, "bytes": {}, "tokens": {}, "reps": {}, "cold_mb_s": {:.2f}, "warm_mb_s": {:.2f}, )"
             R"("cold_s": {}, "warm_s": {}, "load_s": {:.3f}}})"
             "\n",
             nlohmann::json(a.model).dump(), text.size(), n_tokens, a.reps, mb / median(cold), mb / median(warm), list(cold),
             list(warm), median(load));
}

}  // namespace

void register_bench_tokenizer(CLI::App& app) {
  auto a = std::make_shared<BenchTokenizerArgs>();
  CLI::App* c = app.add_subcommand("bench-tokenizer", "encode a file on one thread, print MB/s as JSON");
  c->add_option("-m,--model", a->model, "GGUF file, HF folder or tokenizer folder")->required();
  c->add_option("-f,--file", a->file, "the text to encode")->required();
  c->add_option("-r,--reps", a->reps, "repetitions (default 5); MB/s is their median");
  c->add_flag("--special", a->special, "add_special_tokens = true");
  c->callback([a] { run_bench_tokenizer(*a); });
}

}  // namespace whale::app
