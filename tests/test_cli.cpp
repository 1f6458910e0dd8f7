// The CLI contracts others test whale through: `whale run --tokens ... -n N --temp 0` prints
// the generated ids on one stdout line; `--dump-logits FILE` writes float32
// [n_prompt, n_vocab]; `whale info`; errors are one stderr line and a non-zero exit status.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>

#include "fixtures.h"

namespace whale {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status = -1;
  std::string out, err;
};

fs::path temp_dir() {
  static fs::path d = [] {
    fs::path p = fs::temp_directory_path() / ("whale_cli_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

Result whale(const std::string& args) {
  const fs::path out = temp_dir() / "stdout.txt", err = temp_dir() / "stderr.txt";
  const std::string cmd = std::string(WHALE_BIN) + " " + args + " >" + out.string() + " 2>" + err.string() + " </dev/null";
  int rc = std::system(cmd.c_str());
  Result r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  r.out = test::read_text(out.string());
  r.err = test::read_text(err.string());
  return r;
}

std::string model_path(const std::string& rel) {
  return (fs::path(test::fixtures_dir()) / "models" / rel).string();
}

nlohmann::json first_case(const std::string& dir, size_t k = 1) {
  return nlohmann::json::parse(test::read_text(model_path(dir + "/cases.json")))[k];
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// The one-line error contract: non-zero status, nothing on stdout, and the last stderr line
// is the only error line: "whale: error: ..." (log lines before it are fine).
void expect_clean_error(const Result& r, const std::string& needle) {
  EXPECT_NE(r.status, 0);
  EXPECT_LT(r.status, 128) << "killed by a signal: " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  ASSERT_EQ(r.err.back(), '\n');
  const size_t start = r.err.rfind('\n', r.err.size() - 2);
  const std::string last = r.err.substr(start == std::string::npos ? 0 : start + 1);
  EXPECT_EQ(last.rfind("whale: error: ", 0), 0u) << r.err;
  size_t n_errors = 0;
  for (size_t p = r.err.find("error"); p != std::string::npos; p = r.err.find("error", p + 1)) ++n_errors;
  EXPECT_EQ(n_errors, 1u) << r.err;
  EXPECT_NE(last.find(needle), std::string::npos) << "'" << needle << "' not in: " << r.err;
}

TEST(Cli, RunGreedyPrintsReferenceIds) {
  for (const char* m : {"deepseek-v3-tiny/model-bf16.gguf", "r1-distill-llama-tiny/hf"}) {
    const std::string dir = fs::path(m).begin()->string();
    auto c = first_case(dir);
    // The default f16 KV cache, the f32 one, and llama.cpp's -ctk spelling.
    for (const char* kv : {"", " --cache-type f32", " -ctk f16"}) {
      Result r = whale("run -m " + model_path(m) + " --tokens " + join(c["tokens"]) + " -n 16 --temp 0 -t 2" + kv);
      ASSERT_EQ(r.status, 0) << r.err;
      EXPECT_EQ(r.out, join(c["greedy"]) + "\n") << m << kv;
    }
  }
}

TEST(Cli, DumpLogitsLayoutIsPromptByVocabFloat32) {
  const std::string dir = "deepseek-v2-lite-tiny";
  auto c = first_case(dir, 2);
  const fs::path dump = temp_dir() / "logits.f32";
  Result r = whale("run -m " + model_path(dir + "/hf") + " --tokens " + join(c["tokens"]) +
                   " -n 1 --temp 0 --dump-logits " + dump.string());
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<float> got = test::read_f32(dump.string());
  std::vector<float> want = test::read_f32(model_path(dir + "/" + c["logits"].get<std::string>()));
  ASSERT_EQ(got.size(), c["tokens"].size() * 512);
  ASSERT_EQ(got.size(), want.size());
  float mx = 0, err = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    mx = std::max(mx, std::fabs(want[i]));
    err = std::max(err, std::fabs(got[i] - want[i]));
  }
  EXPECT_LE(err / mx, 1e-4);
}

TEST(Cli, SamplingIsReproducibleWithSeed) {
  const std::string m = model_path("r1-distill-qwen-tiny/model-q8_0.gguf");
  const std::string args = "run -m " + m + " --tokens 1,2,3 -n 12 --temp 1.0 --top-k 40 --top-p 0.9 --seed 7";
  Result a = whale(args), b = whale(args), c = whale("run -m " + m + " --tokens 1,2,3 -n 12 --temp 1.0 --seed 8");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), ','), 11);
  EXPECT_NE(a.out, c.out);
}

TEST(Cli, InfoDescribesModel) {
  Result r = whale("info -m " + model_path("deepseek-v3-tiny-fp8/hf"));
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* s : {"architecture:          deepseek2", "f8_e4m3", "params active/token", "mtp params", "kv cache/token:        960 bytes f16 (default), 1920 bytes f32"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
  Result d = whale("info -m " + model_path("r1-distill-qwen-tiny/model-bf16.gguf"));
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_NE(d.out.find("qwen2"), std::string::npos);
  EXPECT_NE(d.out.find("kv cache/token:        768 bytes f16 (default), 1536 bytes f32"), std::string::npos) << d.out;
}

TEST(Cli, ErrorsAreOneLine) {
  const std::string good = model_path("deepseek-v3-tiny/model-q8_0.gguf");
  expect_clean_error(whale("run -m /nonexistent/model.gguf --tokens 1"), "/nonexistent/model.gguf");
  expect_clean_error(whale("run -m " + good + " --tokens 1,x,3"), "'x' is not a token id");
  expect_clean_error(whale("run -m " + good + " --tokens 1,,3"), "empty item");
  expect_clean_error(whale("run -m " + good + " --tokens 1,99999"), "outside the vocabulary");
  expect_clean_error(whale("run -m " + good + " --tokens 1,2 -n 8 -c 4"), "exceed the context");
  expect_clean_error(whale("run -m " + good + " --tokens 1 --dump-logits /nonexistent/dir/x.f32"), "cannot open");
  expect_clean_error(whale("run -m " + good + " --tokens 1 --cache-type q8_0"), "must be f32 or f16");
  // A truncated copy of a real model.
  const fs::path cut = temp_dir() / "cut.gguf";
  fs::copy_file(good, cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  expect_clean_error(whale("run -m " + cut.string() + " --tokens 1"), cut.string());
  expect_clean_error(whale("info -m " + cut.string()), "outside the file");
  // Not a model at all.
  const fs::path junk = temp_dir() / "junk.gguf";
  std::ofstream(junk) << "hello";
  expect_clean_error(whale("info -m " + junk.string()), "not a GGUF file");
  // A folder without config.json.
  expect_clean_error(whale("info -m " + temp_dir().string()), "config.json");
}

TEST(Cli, UsageErrorsExitNonZero) {
  Result r = whale("run --tokens 1");  // -m missing
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("model"), std::string::npos);
  EXPECT_NE(whale("frobnicate").status, 0);
}

}  // namespace
}  // namespace whale
