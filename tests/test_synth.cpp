// `whale synth` and `whale quantize` write GGUF files whale loads and runs: every weight type
// of both tiny shapes loads and gives finite logits close to the F32 file's; the two MLA
// layouts hold the same model; quantize from F32 reproduces synth's file byte for byte. Plus
// the per-tensor type rule (llama.cpp's Q4_K_M / Q5_K_M) and the real shapes' sizes.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "model/model.h"
#include "model/shapes.h"

namespace whale {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  static fs::path d = [] {
    fs::path p = fs::temp_directory_path() / ("whale_synth_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

// Removes the files of this process when all tests are done.
struct RemoveTempDir : ::testing::Environment {
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(temp_dir(), ec);
  }
};
[[maybe_unused]] ::testing::Environment* const remove_temp_dir =
    ::testing::AddGlobalTestEnvironment(new RemoveTempDir);

// Runs the whale binary; returns its exit status (stderr kept in temp_dir()/err.txt).
int whale(const std::string& args) {
  if (!fs::exists(WHALE_BIN)) ADD_FAILURE() << "build the whale binary first: " << WHALE_BIN;
  const std::string cmd = std::string(WHALE_BIN) + " " + args + " >/dev/null 2>" + (temp_dir() / "err.txt").string();
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// The synthesized file (written once per test run).
std::string synth(const std::string& shape, const std::string& type, const std::string& layout = "split") {
  const std::string out = (temp_dir() / fmt::format("{}-{}-{}.gguf", shape, type, layout)).string();
  if (!fs::exists(out)) {
    EXPECT_EQ(whale(fmt::format("synth --shape {} --type {} --mla-layout {} -o {} -t 2", shape, type, layout, out)), 0);
  }
  return out;
}

// Logits of all positions for a fixed prompt.
std::vector<float> logits_of(const std::string& path) {
  auto m = load_model(path);
  const std::vector<int32_t> tokens = {5, 17, 300, 42, 7, 499};
  std::vector<int32_t> pos(tokens.size());
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = int32_t(i);
  KvCache kv(m->config(), 16);
  std::vector<float> out(tokens.size() * size_t(m->config().n_vocab));
  m->forward(tokens, pos, kv, out.data(), true);
  return out;
}

// max |a - b| / max |b|
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i]))), s = std::max(s, double(std::fabs(b[i])));
  return d / s;
}

struct TypeCase {
  const char* type;
  // max |logit - F32 file's| / max |F32 file's logit|, dense and MoE (where a small change
  // can flip an expert choice). Random weights: Q8_0 lands near 0.02 dense, 0.07 MoE.
  double tol_dense, tol_moe;
};

class SynthTypes : public ::testing::TestWithParam<std::string> {};

TEST_P(SynthTypes, EveryTypeLoadsAndStaysCloseToF32) {
  const std::string shape = GetParam();
  const std::vector<float> ref = logits_of(synth(shape, "F32"));
  for (float x : ref) ASSERT_TRUE(std::isfinite(x));
  const TypeCase cases[] = {{"F16", 0.002, 0.002}, {"BF16", 0.01, 0.1},  {"Q8_0", 0.03, 0.1},
                            {"Q6_K", 0.08, 0.15},  {"Q5_K", 0.15, 0.25}, {"Q5_K_M", 0.15, 0.25},
                            {"Q4_K", 0.3, 0.4},    {"Q4_K_M", 0.3, 0.4}, {"Q4_0", 0.35, 0.4},
                            {"Q4_1", 0.3, 0.4},    {"Q5_0", 0.15, 0.25}, {"Q5_1", 0.15, 0.25}};
  const bool moe = find_shape(shape).config.n_expert > 0;
  for (const TypeCase& c : cases) {
    const std::vector<float> got = logits_of(synth(shape, c.type));
    ASSERT_EQ(got.size(), ref.size());
    bool finite = true;
    for (float x : got) finite &= std::isfinite(x);
    EXPECT_TRUE(finite) << c.type;
    EXPECT_LT(rel_err(got, ref), moe ? c.tol_moe : c.tol_dense) << shape << " " << c.type;
  }
}

INSTANTIATE_TEST_SUITE_P(Tiny, SynthTypes, ::testing::Values("tiny-qwen2", "tiny-deepseek2"));

TEST(Synth, MlaLayoutsHoldTheSameModel) {
  const auto split = logits_of(synth("tiny-deepseek2", "F32"));
  const auto kv_b = logits_of(synth("tiny-deepseek2", "F32", "kv_b"));
  EXPECT_LT(rel_err(kv_b, split), 1e-5);
  GgufFile g(synth("tiny-deepseek2", "F32", "kv_b"));
  EXPECT_NE(g.find_tensor("blk.0.attn_kv_b.weight"), nullptr);
  EXPECT_EQ(g.find_tensor("blk.0.attn_k_b.weight"), nullptr);
  EXPECT_EQ(g.get_int("deepseek2.attention.head_count_kv"), 4);
}

TEST(Synth, TypesAndMetadataAsLlamaCpp) {
  GgufFile g(synth("tiny-deepseek2", "Q4_K_M"));
  auto type = [&](const char* name) { return g.find_tensor(name)->dtype; };
  EXPECT_EQ(type("output.weight"), DType::Q6_K);
  EXPECT_EQ(type("token_embd.weight"), DType::Q4_K);
  EXPECT_EQ(type("blk.1.ffn_gate_inp.weight"), DType::F32);
  EXPECT_EQ(type("blk.1.exp_probs_b.bias"), DType::F32);
  EXPECT_EQ(type("blk.1.attn_k_b.weight"), DType::Q5_0);       // rows of 64: Q4_K's fallback
  EXPECT_EQ(type("blk.1.ffn_down_exps.weight"), DType::F16);   // rows of 80: not even Q8_0
  EXPECT_EQ(g.find_tensor("blk.1.ffn_gate_exps.weight")->shape, (std::vector<int64_t>{16, 80, 256}));
  EXPECT_EQ(g.get_int("general.file_type"), 15);
  EXPECT_EQ(g.get_int("deepseek2.attention.key_length_mla"), 96);
  EXPECT_EQ(g.get_int("deepseek2.attention.key_length"), 256 + 32);
  EXPECT_EQ(g.find("tokenizer.ggml.tokens")->count, 512u);
  // tied embeddings: no output.weight, token_embd takes the output head's type
  GgufFile q(synth("tiny-qwen2", "Q4_K_M"));
  EXPECT_EQ(q.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(q.find_tensor("token_embd.weight")->dtype, DType::Q6_K);
  EXPECT_EQ(q.find_tensor("blk.0.attn_q.bias")->dtype, DType::F32);
}

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

TEST(Quantize, FromF32ReproducesSynthBitForBit) {
  for (const char* shape : {"tiny-qwen2", "tiny-deepseek2"}) {
    for (const char* type : {"Q8_0", "Q4_K_M", "BF16"}) {
      const std::string out = (temp_dir() / fmt::format("{}-{}-quantized.gguf", shape, type)).string();
      ASSERT_EQ(whale(fmt::format("quantize {} {} {}", synth(shape, "F32"), out, type)), 0);
      EXPECT_TRUE(read_all(out) == read_all(synth(shape, type))) << shape << " " << type;
    }
  }
}

TEST(Quantize, RequantizesQuantizedInput) {
  const std::string out = (temp_dir() / "requant.gguf").string();
  ASSERT_EQ(whale(fmt::format("quantize {} {} q8_0", synth("tiny-deepseek2", "Q4_K_M"), out)), 0);
  EXPECT_LT(rel_err(logits_of(out), logits_of(synth("tiny-deepseek2", "Q4_K_M"))), 0.05);
}

TEST(SynthCli, BadArgumentsAreOneLineErrors) {
  const std::string out = (temp_dir() / "bad.gguf").string();
  EXPECT_NE(whale("synth --shape nope --type Q8_0 -o " + out), 0);
  EXPECT_NE(whale("synth --shape tiny-qwen2 --type Q3_K -o " + out), 0);
  EXPECT_NE(whale("synth --shape tiny-deepseek2 --type Q8_0 --mla-layout x -o " + out), 0);
  EXPECT_NE(whale("synth --shape tiny-qwen2 --type Q8_0 --layers 0 -o " + out), 0);
  EXPECT_NE(whale("quantize " + temp_dir().string() + " " + out + " Q8_0"), 0);
  EXPECT_NE(whale("bench -m " + synth("tiny-qwen2", "Q8_0") + " -r 0"), 0);
  EXPECT_FALSE(fs::exists(out));
  const std::string err = read_all((temp_dir() / "err.txt").string());
  EXPECT_EQ(err.rfind("whale: error: -r must be at least 1", 0), 0u) << err;
}

TEST(Bench, JsonLinesPerTest) {
  const std::string out = (temp_dir() / "bench.jsonl").string();
  const std::string cmd = std::string(WHALE_BIN) + " bench -m " + synth("tiny-deepseek2", "Q8_0") +
                          " -p 8 -n 4 -d 8 -r 2 -t 2 -o json >" + out + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream f(out);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("\"test\":\"pp8 @ d8\""), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"n_gen\":4"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("\"gbps\""), std::string::npos) << lines[1];
}

TEST(Shapes, LlamaCppTypeRule) {
  const WeightType m = parse_weight_type("q4_k_m");
  const TypeContext ctx{.n_layer = 28, .n_expert = 0, .has_output = true};
  // use_more_bits(i, 28): i < 3, i >= 24, or (i - 3) % 3 == 2
  for (int il : {0, 1, 2, 5, 8, 23, 24, 27})
    EXPECT_EQ(choose_tensor_type(m, fmt::format("blk.{}.ffn_down.weight", il), 8960, ctx), DType::Q6_K) << il;
  for (int il : {3, 4, 6, 22})
    EXPECT_EQ(choose_tensor_type(m, fmt::format("blk.{}.attn_v.weight", il), 1536, ctx), DType::Q4_K) << il;
  EXPECT_EQ(choose_tensor_type(m, "blk.3.attn_q.weight", 1536, ctx), DType::Q4_K);
  EXPECT_EQ(choose_tensor_type(m, "output.weight", 1536, ctx), DType::Q6_K);
  EXPECT_EQ(choose_tensor_type(m, "token_embd.weight", 1536, ctx), DType::Q4_K);
  // rows that do not split into super-blocks: llama.cpp's tensor_type_fallback
  EXPECT_EQ(choose_tensor_type(m, "blk.3.ffn_down_exps.weight", 1408, ctx), DType::Q5_0);  // Q4_K's
  EXPECT_EQ(choose_tensor_type(m, "blk.5.ffn_down_exps.weight", 1408, ctx), DType::Q8_0);  // Q6_K's
  EXPECT_EQ(choose_tensor_type(parse_weight_type("Q5_K_M"), "blk.3.ffn_down_exps.weight", 1408, ctx), DType::Q5_1);
  EXPECT_EQ(choose_tensor_type(m, "blk.3.ffn_down_exps.weight", 1400, ctx), DType::F16);  // not even 32
  EXPECT_EQ(choose_tensor_type(parse_weight_type("Q5_K_M"), "blk.4.ffn_up.weight", 1536, ctx), DType::Q5_K);
  EXPECT_EQ(choose_tensor_type(parse_weight_type("Q8_0"), "output.weight", 100, ctx), DType::F16);
  // llama-quantize Q4_0 / Q4_1 / Q5_0 / Q5_1: the output head in Q6_K, the rest in the base type
  for (const char* legacy : {"Q4_0", "Q4_1", "Q5_0", "Q5_1"}) {
    const WeightType t = parse_weight_type(legacy);
    EXPECT_EQ(choose_tensor_type(t, "output.weight", 1536, ctx), DType::Q6_K) << legacy;
    EXPECT_EQ(choose_tensor_type(t, "output.weight", 1504, ctx), DType::Q8_0) << legacy;
    EXPECT_EQ(choose_tensor_type(t, "blk.0.ffn_down.weight", 8960, ctx), t.base) << legacy;
    EXPECT_EQ(choose_tensor_type(t, "blk.0.attn_v.weight", 1536, ctx), t.base) << legacy;
  }
  EXPECT_FALSE(is_quantizable("blk.0.ffn_gate_inp.weight", 2));
  EXPECT_FALSE(is_quantizable("blk.0.attn_norm.weight", 1));
  EXPECT_TRUE(is_quantizable("blk.0.attn_k_b.weight", 3));
  EXPECT_THROW(parse_weight_type("Q3_K_M"), Error);
  EXPECT_THROW(find_shape("deepseek-v4"), Error);
}

TEST(Shapes, RealShapesHaveTheirParameterCounts) {
  auto params = [](const std::string& name) {
    int64_t n = 0;
    for (const TensorPlan& t : gguf_tensor_plan(find_shape(name).config, MlaLayout::KvB)) n += t.rows() * t.row_len();
    return n;
  };
  EXPECT_EQ(params("r1-distill-qwen-1.5b"), 1777088000);  // Hugging Face: 1.78 B
  EXPECT_EQ(params("r1-distill-qwen-7b"), 7615616512);    // 7.62 B
  EXPECT_NEAR(params("deepseek-v2-lite") / 1e9, 15.7, 0.05);
  const ModelConfig& v3 = find_shape("deepseek-v3-slice").config;
  EXPECT_EQ(v3.n_layer, 4);
  EXPECT_EQ(v3.n_expert, 256);
}

}  // namespace
}  // namespace whale
