// llama_bench VOCAB.gguf FILE [REPS]: llama.cpp's tokenizer alone (llama_tokenize through its
// public C API, vocab-only load, one thread), printing one JSON line in the form
// `whale bench-tokenizer` prints. llama.cpp has no word cache, so every encode is "cold".
// add_special false (no BOS), parse_special true (as llama-tokenize's default, and as HF matches
// added tokens in text). Built by run.sh against a llama.cpp build; not part of whale.
#include <llama.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) return std::fprintf(stderr, "usage: %s VOCAB.gguf FILE [REPS]\n", argv[0]), 2;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  std::ifstream in(argv[2], std::ios::binary);
  const std::string text(std::istreambuf_iterator<char>(in), {});

  llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.vocab_only = true;
  auto t0 = std::chrono::steady_clock::now();
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) return std::fprintf(stderr, "cannot load %s\n", argv[1]), 1;
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const llama_vocab* vocab = llama_model_get_vocab(model);

  std::vector<llama_token> ids(text.size() + 2);
  std::vector<double> secs;
  int32_t n = 0;
  for (int r = 0; r < reps; ++r) {
    t0 = std::chrono::steady_clock::now();
    n = llama_tokenize(vocab, text.data(), int32_t(text.size()), ids.data(), int32_t(ids.size()), false, true);
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (n < 0) return std::fprintf(stderr, "llama_tokenize failed (%d)\n", n), 1;
  }
  std::vector<double> s = secs;
  std::sort(s.begin(), s.end());
  const double med = s.size() % 2 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2;
  std::string list;
  for (double x : secs) list += (list.empty() ? "" : ", ") + std::to_string(x);
  std::printf("{\"model\": \"%s\", \"bytes\": %zu, \"tokens\": %d, \"reps\": %d, \"cold_mb_s\": %.2f, "
              "\"cold_s\": [%s], \"load_s\": %.3f}\n",
              argv[1], text.size(), n, reps, text.size() / 1e6 / med, list.c_str(), load_s);
  llama_model_free(model);
  return 0;
}
