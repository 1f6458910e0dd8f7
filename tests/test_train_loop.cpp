// The training loop: one clipped AdamW step + balancing-bias update against the fixtures,
// the learning-rate schedule, the trainer on a mock model (loss goes down; resume from a
// checkpoint reproduces the uninterrupted loss sequence bit for bit), the synthetic reasoning
// corpus (every answer and every step of every trace re-checked), and the BPE trainer
// (round trip through Tokenizer::from_hf, special tokens atomic).
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>

#include "core/error.h"
#include "fixtures.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "train/load_balance.h"
#include "text/bpe_trainer.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/corpus.h"
#include "train/gguf_export.h"
#include "model/model.h"
#include "model/kv_cache.h"
#include "train/optimizer.h"
#include "train/trainer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sstream>
#include <fmt/format.h>

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace whale;
using namespace whale::train;

namespace {

std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> read_st(const std::string& path) {
  SafetensorsFile f(path);
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> out;
  for (const TensorRef& t : f.tensors()) {
    EXPECT_EQ(t.dtype, DType::F32) << t.name;
    std::vector<float> v(size_t(t.numel()));
    std::memcpy(v.data(), t.data, v.size() * 4);
    out[t.name] = {t.shape, std::move(v)};
  }
  return out;
}

// ---- (1) one optimizer step on each fixture ---------------------------------------------------

void check_fixture_step(const std::string& folder) {
  const std::string dir = test::fixtures_dir() + "/train/" + folder;
  const json expected = json::parse(test::read_text(dir + "/expected.json"));
  auto model = read_st(dir + "/model.safetensors");
  auto grads = read_st(dir + "/grads.safetensors");
  auto after = read_st(dir + "/after_adamw.safetensors");

  // Params as the gradient engine declares them: the correction bias is not trained, 1-D
  // tensors (norm weights) are not decayed.
  std::vector<Param> params;
  std::map<std::string, int64_t> index;
  for (auto& [name, t] : model) {
    Param p;
    p.name = name;
    p.shape = t.first;
    p.value = t.second;
    p.trainable = !name.ends_with("e_score_correction_bias");
    p.decay = p.shape.size() >= 2;
    if (p.trainable) {
      ASSERT_TRUE(grads.count(name)) << name;
      p.grad = grads[name].second;
    } else {
      EXPECT_FALSE(grads.count(name)) << name;
      p.grad.assign(p.value.size(), 0.0f);
    }
    index[name] = int64_t(params.size());
    params.push_back(std::move(p));
  }
  LossReport report;
  for (auto& [gate, loads] : expected["expert_loads"].items()) {
    report.expert_loads.push_back(loads.get<std::vector<int64_t>>());
    const std::string bias = gate + ".e_score_correction_bias";
    report.bias_param.push_back(index.count(bias) ? index[bias] : -1);
  }

  const json& a = expected["adamw"];
  AdamWConfig cfg{.lr = a["lr"], .beta1 = a["betas"][0], .beta2 = a["betas"][1], .eps = a["eps"],
                  .weight_decay = a["weight_decay"], .clip_norm = 1.0};
  const double norm = clip_grad_norm(params, cfg.clip_norm);
  EXPECT_NEAR(norm, expected["grad_norm_before_clip"].get<double>(), 1e-6 * norm);
  AdamW opt(params, cfg);
  opt.step(params, cfg.lr);
  update_balance_bias(params, report, expected["gamma"].get<double>());

  int n_bias = 0;
  double worst_big = 0, worst_small = 0;
  for (const Param& p : params) {
    ASSERT_TRUE(after.count(p.name)) << p.name;
    const std::vector<float>& want = after[p.name].second;
    ASSERT_EQ(want.size(), p.value.size()) << p.name;
    if (!p.trainable) {
      ++n_bias;
      for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(p.value[i], want[i]) << p.name << "[" << i << "]";
      continue;
    }
    const std::vector<float>& g = grads[p.name].second;
    float gmax = 0;
    for (float x : g) gmax = std::max(gmax, std::fabs(x));
    for (size_t i = 0; i < want.size(); ++i) {
      const double err = std::fabs(double(p.value[i]) - double(want[i]));
      if (std::fabs(g[i]) > 1e-3 * gmax) {
        worst_big = std::max(worst_big, err);
        EXPECT_LE(err, 1e-6) << p.name << "[" << i << "]";
      } else {
        worst_small = std::max(worst_small, err);
        EXPECT_LE(err, 2 * cfg.lr) << p.name << "[" << i << "]";
      }
    }
  }
  EXPECT_EQ(n_bias, folder.starts_with("v3") ? 2 + 1 : 0);  // V3: 2 MoE layers + the MTP block
  std::printf("%s: grad norm %.9g, worst |Δ| %.3g (significant grads), %.3g (tiny grads), %d biases exact\n",
              folder.c_str(), norm, worst_big, worst_small, n_bias);
}

}  // namespace

TEST(TrainOptimizer, OneClippedAdamWStepV3) { check_fixture_step("v3-train-tiny"); }
TEST(TrainOptimizer, OneClippedAdamWStepV2Lite) { check_fixture_step("v2lite-train-tiny"); }

// ---- (2) schedule -------------------------------------------------------------------------------

// Activation buffers are allocated without zero-fill (every producer writes them in full): a
// step on a heap dirtied by NaN patterns and another batch of another shape gives the same bits
// as the first. (It fails when a producer leaves a part unwritten, e.g. one token's row of the
// latent before its norm.)
TEST(TrainModelRepeat, SecondStepOnADirtyHeapGivesTheSameBits) {
  const std::string dir = test::fixtures_dir() + "/train/v3-train-tiny";
  auto model = load_train_model(dir);
  const int64_t V = model->config().n_vocab;
  auto make_batch = [&](int64_t B, int64_t T, uint32_t seed) {
    Batch b{B, T, {}, {}};
    std::mt19937 rng(seed);
    for (int64_t i = 0; i < B * T; ++i) {
      b.tokens.push_back(int32_t(rng() % uint32_t(V)));
      b.targets.push_back(int32_t(rng() % uint32_t(V)));
    }
    return b;
  };
  const Batch a = make_batch(2, 9, 1), other = make_batch(3, 13, 2);
  auto grads = [&] {
    std::vector<std::vector<float>> g;
    for (const Param& p : model->params()) g.push_back(p.grad);
    return g;
  };
  // Freed blocks of every size, filled with a NaN pattern, for the allocator to hand out again.
  auto dirty_heap = [] {
    std::vector<std::unique_ptr<char[]>> blocks;
    for (size_t size = 16; size <= (size_t(1) << 20); size = size * 3 / 2 + 8)
      for (int k = 0; k < 4; ++k) {
        blocks.emplace_back(new char[size]);
        std::memset(blocks.back().get(), 0xff, size);
      }
  };
  dirty_heap();
  const LossReport first = model->forward_backward(a, 0.3f);
  const auto g1 = grads();
  model->forward_backward(other, 0.3f);
  dirty_heap();
  const LossReport again = model->forward_backward(a, 0.3f);
  EXPECT_EQ(first.loss_total, again.loss_total);
  const auto g2 = grads();
  ASSERT_EQ(g1.size(), g2.size());
  for (size_t i = 0; i < g1.size(); ++i)
    EXPECT_EQ(0, std::memcmp(g1[i].data(), g2[i].data(), g1[i].size() * sizeof(float)))
        << model->params()[i].name;
}

TEST(TrainOptimizer, WarmupCosineSchedule) {
  LrSchedule s{.lr = 1e-3, .warmup = 10, .total = 110, .min_ratio = 0.1};
  EXPECT_DOUBLE_EQ(s.at(1), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(5), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_NEAR(s.at(60), 1e-3 * (0.1 + 0.9 * 0.5), 1e-15);  // half-way through the cosine
  EXPECT_NEAR(s.at(35), 1e-3 * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25))), 1e-15);
  EXPECT_DOUBLE_EQ(s.at(110), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(500), 1e-4);
  for (int64_t t = 11; t < 110; ++t) EXPECT_LT(s.at(t + 1), s.at(t)) << t;
  LrSchedule flat{.lr = 2e-3, .warmup = 0, .total = 100, .min_ratio = 1.0};
  EXPECT_DOUBLE_EQ(flat.at(1), 2e-3);
  EXPECT_DOUBLE_EQ(flat.at(77), 2e-3);
  EXPECT_THROW(s.at(0), Error);
}

TEST(TrainOptimizer, ClippingLeavesSmallGradientsAlone) {
  std::vector<Param> p(1);
  p[0].value = {1, 2};
  p[0].grad = {0.3f, 0.4f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(p, 1.0), std::sqrt(double(0.3f) * double(0.3f) + double(0.4f) * double(0.4f)));
  EXPECT_EQ(p[0].grad[0], 0.3f);
  p[0].grad = {30, 40};
  EXPECT_DOUBLE_EQ(clip_grad_norm(p, 1.0), 50.0);
  EXPECT_NEAR(p[0].grad[0], 0.6, 1e-7);
  p[0].grad = {NAN, 1};
  EXPECT_THROW(clip_grad_norm(p, 1.0), Error);
}

TEST(TrainOptimizer, BalanceBiasSignOfZeroIsZero) {
  std::vector<Param> p(1);
  p[0].value = {0, 0, 0, 0};
  p[0].trainable = false;
  LossReport r;
  r.expert_loads = {{1, 3, 2, 2}};  // mean 2
  r.bias_param = {0};
  update_balance_bias(p, r, 0.5);
  EXPECT_EQ(p[0].value, (std::vector<float>{0.5f, -0.5f, 0, 0}));
  r.bias_param = {3};
  EXPECT_THROW(update_balance_bias(p, r, 0.5), Error);
}

// ---- (3) the trainer on a mock model ---------------------------------------------------------

namespace {

// A bigram softmax regression, P(next | t) = softmax(W[t] + b): one decayed matrix, one
// undecayed vector, and a fake 4-expert "gate" whose correction bias the loop must update
// (expert of a token = token mod 4, so the loads are uneven).
class MockBigram : public TrainModel {
 public:
  explicit MockBigram(int64_t V) : V_(V) {
    cfg_.n_vocab = V;
    params_.resize(3);
    params_[0] = Param{"W", {V, V}, std::vector<float>(size_t(V * V)), {}, true, true};
    params_[1] = Param{"b", {V}, std::vector<float>(size_t(V)), {}, true, false};
    params_[2] = Param{"gate.e_score_correction_bias", {4}, std::vector<float>(4), {}, false, false};
    uint64_t s = 7;
    for (float& w : params_[0].value) w = float(int64_t(splitmix64(s) % 2001) - 1000) * 2e-5f;
    for (Param& p : params_) p.grad.assign(p.value.size(), 0.0f);
  }
  const ModelConfig& config() const override { return cfg_; }
  std::vector<Param>& params() override { return params_; }
  LossReport forward_backward(const Batch& batch, float) override {
    for (Param& p : params_) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    LossReport r;
    r.expert_loads.assign(1, std::vector<int64_t>(4, 0));
    r.bias_param = {2};
    const int64_t N = batch.B * batch.T;
    std::vector<double> logits(static_cast<size_t>(V_));
    double loss = 0;
    for (int64_t i = 0; i < N; ++i) {
      const int32_t t = batch.tokens[size_t(i)], y = batch.targets[size_t(i)];
      ++r.expert_loads[0][size_t(t % 4)];
      double mx = -1e30, z = 0;
      for (int64_t v = 0; v < V_; ++v)
        logits[size_t(v)] = params_[0].value[size_t(t * V_ + v)] + params_[1].value[size_t(v)],
        mx = std::max(mx, logits[size_t(v)]);
      for (int64_t v = 0; v < V_; ++v) z += std::exp(logits[size_t(v)] - mx);
      loss += std::log(z) + mx - logits[size_t(y)];
      for (int64_t v = 0; v < V_; ++v) {
        const double g = (std::exp(logits[size_t(v)] - mx) / z - (v == y)) / double(N);
        params_[0].grad[size_t(t * V_ + v)] += float(g);
        params_[1].grad[size_t(v)] += float(g);
      }
    }
    r.loss_main = r.loss_total = loss / double(N);
    return r;
  }

 private:
  int64_t V_;
  ModelConfig cfg_;
  std::vector<Param> params_;
};

// Tokens from a near-deterministic bigram chain: next = (3t + 1) mod V with probability 0.9.
TokenDataset mock_data(int64_t V, int64_t n) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint64_t s = 42;
  for (int64_t i = 1; i < n; ++i)
    t[size_t(i)] = splitmix64(s) % 10 == 0 ? int32_t(splitmix64(s) % uint64_t(V))
                                           : int32_t((3 * t[size_t(i - 1)] + 1) % V);
  return TokenDataset(std::move(t));
}

TrainerOptions mock_options(const std::string& out) {
  TrainerOptions o;
  o.out_dir = out;
  o.steps = 120, o.batch = 4, o.seq = 32;
  o.adamw.lr = 0.05, o.adamw.weight_decay = 0.01;
  o.warmup = 10, o.min_lr_ratio = 0.1, o.gamma = 0.01;
  o.checkpoint_every = 25, o.keep_checkpoints = 2;
  o.quiet = true, o.plot = false;
  return o;
}

struct TempDir {
  std::string path;
  explicit TempDir(const std::string& name)
      : path((fs::temp_directory_path() / fmt::format("whale-{}-{}", name, ::getpid())).string()) {
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST(Trainer, LowersTheLossOfAMockModel) {
  const int64_t V = 16;
  const TokenDataset data = mock_data(V, 4000);
  TempDir dir("train-mock");
  MockBigram model(V);
  std::vector<double> losses;
  TrainerOptions o = mock_options(dir.path);
  o.on_step = [&](const StepRecord& r) { losses.push_back(r.loss); };
  const TrainResult res = run_training(model, data, o);
  ASSERT_EQ(losses.size(), 120u);
  EXPECT_EQ(res.resumed_from, 0);
  EXPECT_NEAR(losses.front(), std::log(16.0), 0.05);
  double tail = 0;
  for (size_t i = losses.size() - 10; i < losses.size(); ++i) tail += losses[i] / 10;
  std::printf("mock bigram: loss %.4f -> %.4f (mean of last 10 steps; data entropy ~0.57)\n",
              losses.front(), tail);
  EXPECT_LT(tail, 1.0);
  // The overloaded expert's bias went down, the idle-ish ones up; norms weren't decayed.
  EXPECT_EQ(*latest_checkpoint(dir.path), 120);
  EXPECT_TRUE(fs::exists(dir.path + "/checkpoint-000120.state"));
  EXPECT_TRUE(fs::exists(dir.path + "/checkpoint-000100.state"));
  EXPECT_FALSE(fs::exists(dir.path + "/checkpoint-000075.state"));  // pruned (keep 2)
  // A rerun finds nothing to do and removes what a killed write left.
  std::ofstream(dir.path + "/checkpoint-000125.state.tmp") << "partial";
  MockBigram again(V);
  TrainerOptions o2 = mock_options(dir.path);
  EXPECT_EQ(run_training(again, data, o2).resumed_from, 120);
  EXPECT_FALSE(fs::exists(dir.path + "/checkpoint-000125.state.tmp"));
  EXPECT_EQ(again.params()[0].value, model.params()[0].value);  // the checkpoint's weights
  const std::string csv = test::read_text(dir.path + "/log.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 121);
}

namespace {

// The first four columns (step and the losses) of every line of a log.csv.
std::vector<std::string> loss_columns(const std::string& csv) {
  std::vector<std::string> rows;
  std::istringstream in(csv);
  std::string line;
  while (std::getline(in, line)) {
    size_t cut = 0;
    for (int i = 0; i < 4 && cut != std::string::npos; ++i) cut = line.find(',', cut + 1);
    rows.push_back(line.substr(0, cut));
  }
  return rows;
}

}  // namespace

TEST(Trainer, ResumeReproducesTheLossSequenceBitForBit) {
  const int64_t V = 16;
  const TokenDataset data = mock_data(V, 1000);  // several epochs: the permutation must resume too
  TempDir full("train-full"), cut("train-cut");
  std::vector<double> reference, resumed;
  {
    MockBigram model(V);
    TrainerOptions o = mock_options(full.path);
    o.on_step = [&](const StepRecord& r) { reference.push_back(r.loss); };
    run_training(model, data, o);
  }
  {
    MockBigram model(V);  // "killed" after step 60: the last checkpoint is step 50
    TrainerOptions o = mock_options(cut.path);
    o.stop_after = 60;
    o.on_step = [&](const StepRecord& r) { resumed.push_back(r.loss); };
    EXPECT_EQ(run_training(model, data, o).last_step, 60);
  }
  {
    MockBigram model(V);  // a fresh process: weights are the initial ones until the resume
    TrainerOptions o = mock_options(cut.path);
    resumed.resize(50);
    o.on_step = [&](const StepRecord& r) { resumed.push_back(r.loss); };
    EXPECT_EQ(run_training(model, data, o).resumed_from, 50);
  }
  ASSERT_EQ(resumed.size(), reference.size());
  for (size_t i = 0; i < reference.size(); ++i)
    EXPECT_EQ(std::memcmp(&resumed[i], &reference[i], sizeof(double)), 0)
        << "step " << i + 1 << ": " << resumed[i] << " vs " << reference[i];
  // The CSV of the resumed run equals the uninterrupted one in every loss column.
  EXPECT_EQ(loss_columns(test::read_text(cut.path + "/log.csv")),
            loss_columns(test::read_text(full.path + "/log.csv")));
}

TEST(Trainer, RejectsACheckpointOfAnotherModel) {
  TempDir dir("train-other");
  const TokenDataset data = mock_data(16, 1000);
  {
    MockBigram model(16);
    TrainerOptions o = mock_options(dir.path);
    o.steps = 5, o.warmup = 0, o.checkpoint_every = 5;
    run_training(model, data, o);
  }
  MockBigram bigger(32);
  TrainerOptions o = mock_options(dir.path);
  EXPECT_THROW(run_training(bigger, data, o), Error);
}

TEST(Trainer, DamagedCheckpointsAreErrorsNotCrashes) {
  TempDir dir("train-damaged");
  const TokenDataset data = mock_data(16, 1000);
  {
    MockBigram model(16);
    TrainerOptions o = mock_options(dir.path);
    o.steps = 5, o.warmup = 0, o.checkpoint_every = 5;
    run_training(model, data, o);
  }
  const std::string state = dir.path + "/checkpoint-000005.state";
  const std::string good = test::read_text(state);
  TrainerOptions o = mock_options(dir.path);
  for (size_t cut : {size_t(0), size_t(5), size_t(64), good.size() / 2, good.size() - 4}) {
    fs::remove(state);  // the checkpoint's files are read-only copies in spirit: write anew
    std::ofstream(state, std::ios::binary) << good.substr(0, cut);
    MockBigram model(16);
    EXPECT_THROW(run_training(model, data, o), Error) << "truncated to " << cut;
  }
  std::string flipped = good;
  flipped[10] = '#';  // breaks the JSON header
  fs::remove(state);
  std::ofstream(state, std::ios::binary) << flipped;
  MockBigram model(16);
  EXPECT_THROW(run_training(model, data, o), Error);
  std::ofstream(dir.path + "/latest") << "garbage";
  EXPECT_THROW(run_training(model, data, o), Error);
  o.seed = 99;  // resuming with another data order would silently change the run
  std::ofstream(dir.path + "/latest") << "5\n";
  fs::remove(state);
  std::ofstream(state, std::ios::binary) << good;
  EXPECT_THROW(run_training(model, data, o), Error);
}

TEST(Trainer, BatchesFollowTheCursor) {
  const TokenDataset data = mock_data(16, 1000);
  BatchSampler a(data, 3, 8, 5), b(data, 3, 8, 5);
  for (int i = 0; i < 200; ++i) a.next();  // past several epochs (124 windows each)
  b.seek(a.cursor());
  const Batch x = a.next(), y = b.next();
  EXPECT_EQ(x.tokens, y.tokens);
  EXPECT_EQ(x.targets, y.targets);
  for (int64_t i = 0; i + 1 < x.T; ++i) EXPECT_EQ(x.targets[size_t(i)], x.tokens[size_t(i + 1)]);
}

// ---- (4) the synthetic reasoning corpus ------------------------------------------------------

namespace {

// Value of "a op b op c ..." with * before + and -.
int64_t eval_expr(const std::string& e) {
  std::istringstream in(e);
  std::vector<int64_t> terms;
  std::vector<char> ops;
  int64_t x;
  in >> x;
  terms.push_back(x);
  char op;
  while (in >> op >> x) {
    if (op == '*') terms.back() *= x;
    else terms.push_back(op == '-' ? -x : x), ops.push_back(op);
  }
  int64_t s = 0;
  for (int64_t t : terms) s += t;
  return s;
}

// Every chain "e1 REL e2 [REL e3 ...]" in the text (REL one of = < >) must hold. Returns the
// number checked.
int check_statements(const std::string& text, const std::string& context) {
  static const std::regex chain(R"(-?\d+(?: [-+*] -?\d+)*(?: [=<>] -?\d+(?: [-+*] -?\d+)*)+)");
  static const std::regex rel(R"( ([=<>]) )");
  int n = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), chain); it != std::sregex_iterator(); ++it) {
    const std::string s = it->str();
    std::vector<std::string> sides;
    std::vector<char> rels;
    size_t prev = 0;
    for (auto r = std::sregex_iterator(s.begin(), s.end(), rel); r != std::sregex_iterator(); ++r) {
      sides.push_back(s.substr(prev, size_t(r->position()) - prev));
      rels.push_back(r->str(1)[0]);
      prev = size_t(r->position() + r->length());
    }
    sides.push_back(s.substr(prev));
    for (size_t i = 0; i < rels.size(); ++i) {
      const int64_t l = eval_expr(sides[i]), r = eval_expr(sides[i + 1]);
      const bool ok = rels[i] == '=' ? l == r : rels[i] == '<' ? l < r : l > r;
      EXPECT_TRUE(ok) << "false statement '" << s << "' in: " << context;
      ++n;
    }
  }
  return n;
}

// The answer recomputed from the question alone.
std::string expected_answer(const std::string& q) {
  std::smatch m;
  auto n = [&](int i) { return std::stoll(m.str(i)); };
  if (std::regex_match(q, m, std::regex(R"(What is (\d+) ([-+*]) (\d+)\?)")))
    return std::to_string(eval_expr(m.str(1) + " " + m.str(2) + " " + m.str(3)));
  if (std::regex_match(q, m, std::regex(R"(Which is larger, (\d+) or (\d+)\?)")))
    return n(1) == n(2) ? "equal" : std::to_string(std::max(n(1), n(2)));
  if (std::regex_match(q, m, std::regex(R"(\w+ has (\d+) \w+, gets (\d+) more and then gives away (\d+)\. .*)")))
    return std::to_string(n(1) + n(2) - n(3));
  if (std::regex_match(q, m, std::regex(R"(\w+ has (\d+) \w+\. \w+ gets (\d+) more\. .*)")))
    return std::to_string(n(1) + n(2));
  if (std::regex_match(q, m, std::regex(R"(\w+ has (\d+) \w+ and gives away (\d+)\. .*)")))
    return std::to_string(n(1) - n(2));
  if (std::regex_match(q, m, std::regex(R"(There are (\d+) boxes with (\d+) \w+ in each box\. .*)")))
    return std::to_string(n(1) * n(2));
  ADD_FAILURE() << "unrecognised question: " << q;
  return "";
}

}  // namespace

TEST(Corpus, EveryAnswerAndEveryStepIsCorrect) {
  CorpusOptions o{.seed = 3, .max_digits = 4, .max_mul_digits = 3};
  std::map<ProblemKind, int> kinds;
  int statements = 0;
  for (int64_t i = 0; i < 3000; ++i) {
    const Problem p = make_problem(o, i);
    ++kinds[p.kind];
    EXPECT_EQ(p.answer, "The answer is " + expected_answer(p.question) + ".") << p.question;
    statements += check_statements(p.reasoning, p.question);
    EXPECT_EQ(p.answer.find("</think>"), std::string::npos);
    const std::string doc = format_r1(p);
    EXPECT_TRUE(doc.starts_with("<｜begin▁of▁sentence｜><｜User｜>" + p.question + "<｜Assistant｜><think>\n"));
    EXPECT_TRUE(doc.ends_with("\n</think>\n\n" + p.answer + "<｜end▁of▁sentence｜>"));
  }
  EXPECT_EQ(kinds.size(), 5u);
  for (auto& [k, n] : kinds) EXPECT_GT(n, 450) << int(k);
  EXPECT_GT(statements, 3000 * 2);
  std::printf("corpus: 3000 problems, %d trace statements verified\n", statements);
  // Deterministic per (seed, index); other seeds give other problems.
  EXPECT_EQ(make_problem(o, 17).question, make_problem(o, 17).question);
  CorpusOptions o2 = o;
  o2.seed = 4;
  int same = 0;
  for (int64_t i = 0; i < 50; ++i) same += make_problem(o, i).question == make_problem(o2, i).question;
  EXPECT_LT(same, 10);
}

TEST(Corpus, TheCheckerCatchesAWrongStep) {
  EXPECT_EQ(check_statements("7 + 9 = 16, write 6, carry 1.", "ok"), 1);
  EXPECT_NONFATAL_FAILURE(check_statements("4 + 8 + 1 = 12", "bad"), "false statement");
  EXPECT_NONFATAL_FAILURE(check_statements("3 - 8 - 1 < 0, borrow: 13 - 8 - 1 = 5", "bad"), "false statement");
}

// ---- (5) the BPE trainer ---------------------------------------------------------------------

TEST(BpeTrainer, RoundTripsAndKeepsSpecialTokensAtomic) {
  std::vector<std::string> texts;
  CorpusOptions o{.seed = 9};
  for (int64_t i = 0; i < 400; ++i) texts.push_back(format_r1(make_problem(o, i)));
  texts.push_back("Ünïcödé, emoji 🐋 and tabs\tand\r\nnewlines; 中文 too.");
  const TrainedBpe bpe = train_bpe(texts, BpeTrainerOptions{.vocab_size = 400, .min_frequency = 2});
  EXPECT_EQ(bpe.vocab_size, 400);
  EXPECT_EQ(bpe.n_merges, 400 - 3 - 256 - 4);
  TempDir dir("bpe");
  fs::create_directories(dir.path);
  std::ofstream(dir.path + "/tokenizer.json") << bpe.tokenizer_json;
  std::ofstream(dir.path + "/tokenizer_config.json") << bpe.tokenizer_config_json;
  const auto tok = Tokenizer::from_hf(dir.path);
  EXPECT_EQ(tok->n_vocab(), 400);
  EXPECT_EQ(tok->bos(), 0);
  EXPECT_EQ(tok->eos(), 1);

  // Every document (and unseen text) decodes back to itself, byte for byte.
  const std::vector<std::string> unseen = {"", " ", "What is 123456789 * 98?", "\n\n  x  \n",
                                           "naïve café 🐳🐋 \xe2\x80\x8b zero-width", "<think>\n</think>"};
  size_t tokens = 0, bytes = 0;
  for (const std::vector<std::string>* set : std::vector<const std::vector<std::string>*>{&texts, &unseen})
    for (const std::string& t : *set) {
      const std::vector<int32_t> ids = tok->encode(t, false);
      EXPECT_EQ(tok->decode(ids, false), t);
      tokens += ids.size(), bytes += t.size();
    }
  std::printf("bpe: 400 tokens, %zu bytes -> %zu tokens (%.2f bytes/token)\n", bytes, tokens,
              double(bytes) / double(tokens));
  EXPECT_GT(double(bytes) / double(tokens), 2.0);  // merges were learnt and used

  // Special and chat tokens are single ids; digits are single tokens; BOS is added.
  for (const auto* list : {&r1_special_tokens(), &r1_chat_tokens()})
    for (const std::string& s : *list) {
      const std::vector<int32_t> ids = tok->encode("x" + s + "y", false);
      ASSERT_EQ(ids.size(), 3u) << s;
      EXPECT_EQ(tok->token_text(ids[1]), s);
    }
  EXPECT_TRUE(tok->is_special(0));
  EXPECT_FALSE(tok->is_special(*tok->find_token("<think>")));
  EXPECT_EQ(tok->encode("1234", false).size(), 4u);
  const std::vector<int32_t> with_bos = tok->encode("hi", true);
  EXPECT_EQ(with_bos.front(), 0);
  // Skipping special tokens drops BOS/EOS but keeps the reasoning markers (as R1).
  const std::string doc = format_r1(make_problem(o, 1));
  const std::string shown = tok->decode(tok->encode(doc, false), true);
  EXPECT_EQ(shown.find("<｜begin"), std::string::npos);
  EXPECT_NE(shown.find("<think>"), std::string::npos);

  // Deterministic.
  EXPECT_EQ(train_bpe(texts, BpeTrainerOptions{.vocab_size = 400}).tokenizer_json, bpe.tokenizer_json);
  EXPECT_THROW(train_bpe(texts, BpeTrainerOptions{.vocab_size = 100}), Error);
}

// ---- GGUF export of the training weights ------------------------------------------------------

TEST(GgufExport, ExportedModelGivesTheSameLogitsAsTheHfFolder) {
  for (const char* folder : {"v3-train-tiny", "v2lite-train-tiny"}) {
    const std::string dir = test::fixtures_dir() + "/train/" + folder;
    const ModelConfig cfg = config_from_hf_json(dir + "/config.json");
    std::vector<Param> params;
    for (auto& [name, t] : read_st(dir + "/model.safetensors"))  // MTP tensors included: skipped
      params.push_back(Param{name, t.first, t.second, {}, true, t.first.size() >= 2});
    TempDir out("gguf-export");
    fs::create_directories(out.path);
    const std::string gguf = out.path + "/model.gguf";
    export_gguf(cfg, params, gguf, GgufExportOptions{.model_name = "test", .tokenizer_dir = ""});
    // The trained context length reaches the file (llama.cpp reads n_ctx_train from it).
    ASSERT_GT(cfg.n_ctx_train, 0) << folder;
    EXPECT_EQ(load_model(gguf)->config().n_ctx_train, cfg.n_ctx_train) << folder;

    const std::vector<int32_t> tokens = {5, 77, 200, 3, 19, 255, 0, 128};
    std::vector<int32_t> pos(tokens.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = int32_t(i);
    auto logits = [&](const std::string& path) {
      auto m = load_model(path);
      KvCache kv(m->config(), 16);
      std::vector<float> out(tokens.size() * size_t(cfg.n_vocab));
      m->forward(tokens, pos, kv, out.data(), true);
      return out;
    };
    // The HF folder with only config.json + model.safetensors (the fixture folder also holds
    // the expected outputs as safetensors, which a folder load would take for shards).
    const std::string hf = out.path + "/hf";
    fs::create_directories(hf);
    fs::create_symlink(dir + "/config.json", hf + "/config.json");
    fs::create_symlink(dir + "/model.safetensors", hf + "/model.safetensors");
    const std::vector<float> want = logits(hf), got = logits(gguf);
    float mx = 0, err = 0;
    for (size_t i = 0; i < want.size(); ++i)
      mx = std::max(mx, std::fabs(want[i])), err = std::max(err, std::fabs(want[i] - got[i]));
    std::printf("%s: GGUF export vs HF folder, worst logit difference %.3g (largest logit %.3g)\n", folder, err, mx);
    EXPECT_LE(err, 1e-5f * mx) << folder;

    // The MTP block travels in llama.cpp's next-n layout and the main forward ignores it: the
    // same logits, bit for bit, as a file without it.
    const std::string plain = out.path + "/no-mtp.gguf";
    export_gguf(cfg, params, plain, GgufExportOptions{.model_name = "test", .tokenizer_dir = "", .mtp = false});
    EXPECT_EQ(logits(plain), got) << folder;
    const GgufFile with(gguf), without(plain);
    const std::string nextn = fmt::format("blk.{}.nextn.", cfg.n_layer);
    EXPECT_EQ(with.get_int("deepseek2.nextn_predict_layers").value_or(0), cfg.n_mtp_layers) << folder;
    EXPECT_EQ(with.get_int("deepseek2.block_count").value_or(0), cfg.n_layer + cfg.n_mtp_layers) << folder;
    EXPECT_EQ(without.get_int("deepseek2.block_count").value_or(0), cfg.n_layer) << folder;
    for (const char* t : {"eh_proj.weight", "enorm.weight", "hnorm.weight", "shared_head_norm.weight"})
      EXPECT_EQ(with.find_tensor(nextn + t) != nullptr, cfg.n_mtp_layers > 0) << folder << " " << t;
    EXPECT_EQ(with.find_tensor(fmt::format("blk.{}.ffn_gate_exps.weight", cfg.n_layer)) != nullptr,
              cfg.n_mtp_layers > 0) << folder;
    EXPECT_EQ(without.find_tensor(nextn + "eh_proj.weight"), nullptr) << folder;
    if (cfg.n_mtp_layers > 0) {  // the values are the trained MTP weights
      const TensorRef* eh = with.find_tensor(nextn + "eh_proj.weight");
      ASSERT_NE(eh, nullptr);
      const auto st = read_st(dir + "/model.safetensors");
      const std::vector<float>& want_eh = st.at(fmt::format("model.layers.{}.eh_proj.weight", cfg.n_layer)).second;
      ASSERT_EQ(eh->nbytes, want_eh.size() * 4);
      EXPECT_EQ(std::memcmp(eh->data, want_eh.data(), eh->nbytes), 0);
    }
  }
}

TEST(GgufExport, MissingOrMisshapenParametersAreErrors) {
  const std::string dir = test::fixtures_dir() + "/train/v2lite-train-tiny";
  const ModelConfig cfg = config_from_hf_json(dir + "/config.json");
  std::vector<Param> params;
  for (auto& [name, t] : read_st(dir + "/model.safetensors"))
    if (name != "lm_head.weight") params.push_back(Param{name, t.first, t.second, {}, true, true});
  TempDir out("gguf-bad");
  fs::create_directories(out.path);
  EXPECT_THROW(export_gguf(cfg, params, out.path + "/x.gguf", {}), Error);
  EXPECT_FALSE(fs::exists(out.path + "/x.gguf"));
}

// ---- the CLI: corpus → train, kill -9, resume ---------------------------------------------------

namespace {

// Runs a shell command, returns (exit status, stdout + stderr).
std::pair<int, std::string> sh(const std::string& cmd) {
  std::string out;
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

TEST(TrainCli, KillNineAndResumeGivesTheSameLossesBitForBit) {
  TempDir dir("train-cli");
  fs::create_directories(dir.path);
  const std::string bin = WHALE_BIN, data = dir.path + "/data";
  auto [rc, out] = sh(bin + " corpus -o " + data + " --n 800 --seed 2 --vocab-size 300");
  ASSERT_EQ(rc, 0) << out;
  json model = json::parse(test::read_text(test::fixtures_dir() + "/train/v3-train-tiny/config.json"));
  model["vocab_size"] = 300;
  const json cfg = {{"config", model}, {"batch", 2},  {"seq", 32}, {"steps", 60}, {"warmup", 5},
                    {"adamw", {{"lr", 3e-3}}}, {"checkpoint_every", 5}, {"log_every", 20}};
  std::ofstream(dir.path + "/cfg.json") << cfg.dump();
  const std::string train = bin + " train --config " + dir.path + "/cfg.json --data " + data + " -t 2 --no-plot -o ";

  std::tie(rc, out) = sh(train + dir.path + "/full");
  if (rc != 0 && out.find("not built yet") != std::string::npos) GTEST_SKIP() << "training model not linked in (stand-in)";
  ASSERT_EQ(rc, 0) << out;

  // The same run, killed with SIGKILL as soon as its first checkpoint is complete.
  const std::string cut = dir.path + "/cut";
  const std::vector<std::string> args = {bin, "train", "--config", dir.path + "/cfg.json", "--data", data,
                                         "-t", "2", "--no-plot", "-o", cut};
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, STDERR_FILENO);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  bool killed = false;
  for (int i = 0; i < 120000 && !killed; ++i) {
    if (fs::exists(cut + "/latest")) killed = ::kill(pid, SIGKILL) == 0;
    else ::usleep(250);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(killed);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run ended before it could be killed";
  const auto latest = latest_checkpoint(cut);
  ASSERT_TRUE(latest.has_value());

  std::tie(rc, out) = sh(train + cut);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("resuming from step"), std::string::npos) << out;
  const auto want = loss_columns(test::read_text(dir.path + "/full/log.csv"));
  EXPECT_EQ(want.size(), 61u);
  EXPECT_EQ(loss_columns(test::read_text(cut + "/log.csv")), want);
  std::printf("kill -9 at checkpoint %lld, resumed: %zu logged steps identical\n", (long long)*latest, want.size() - 1);
  // A short run of the tiny model learns: the loss of the last 10 steps is far below the start
  // (ln 300 · (1 + 0.3) ≈ 7.4 for uniform predictions).
  double first = 0, tail = 0;
  for (size_t i = 1; i < want.size(); ++i) {
    const double loss = std::stod(want[i].substr(want[i].find(',') + 1));
    if (i == 1) first = loss;
    if (i + 10 >= want.size()) tail += loss / 10;
  }
  std::printf("tiny V3 model, 60 steps of 2 x 32 tokens: loss %.3f -> %.3f\n", first, tail);
  EXPECT_NEAR(first, std::log(300.0) * 1.3, 0.5);
  EXPECT_LT(tail, 5.5);  // measured 4.62

  // The GGUF checkpoint runs in whale with its own tokenizer.
  std::tie(rc, out) = sh(bin + " run -m " + cut + "/checkpoint-000060.gguf -p 'What is 2 + 3?' -n 4 --temp 0");
  EXPECT_EQ(rc, 0) << out;
}

TEST(TrainLog, LossCurvePngNextToTheCsv) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "gnuplot not installed";
  TempDir dir("train-png");
  MockBigram model(16);
  TrainerOptions o = mock_options(dir.path);
  o.steps = 30, o.plot = true;
  run_training(model, mock_data(16, 1000), o);
  const std::string png = test::read_text(dir.path + "/loss.png");
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_FALSE(fs::exists(dir.path + "/loss.png.tmp"));
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3 * 3600 + 7 * 60), "3h07m");
}
