// The training engine against the reference fixtures (../shared/fixtures/train): losses,
// every gradient tensor, expert loads, the finite-difference spot checks, and `whale grad`.
// Tolerances are the fixtures README's for a float32 implementation.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>
#include <sys/wait.h>

#include "core/error.h"
#include "fixtures.h"
#include "formats/safetensors.h"
#include "formats/safetensors_writer.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "train/batch_json.h"
#include "train/train_model.h"

namespace whale {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string fixture(const std::string& name) {
  return (fs::path(test::fixtures_dir()) / "train" / name).string();
}

std::map<std::string, std::vector<float>> read_tensors(const std::string& path) {
  SafetensorsFile f(path);
  std::map<std::string, std::vector<float>> out;
  for (const TensorRef& t : f.tensors()) {
    EXPECT_EQ(t.dtype, DType::F32) << t.name;
    std::vector<float> v(size_t(t.numel()));
    std::memcpy(v.data(), t.data, v.size() * 4);
    out.emplace(t.name, std::move(v));
  }
  return out;
}

// Largest |ours - ref| relative to the largest |ref| of each tensor; fails above 1e-4.
double check_grads(const std::map<std::string, std::vector<float>>& ref,
                   const std::map<std::string, const std::vector<float>*>& ours,
                   const std::string& label) {
  double worst = 0;
  std::string worst_name;
  for (const auto& [name, r] : ref) {
    auto it = ours.find(name);
    if (it == ours.end()) {
      ADD_FAILURE() << label << ": no gradient for " << name;
      continue;
    }
    const std::vector<float>& g = *it->second;
    EXPECT_EQ(g.size(), r.size()) << name;
    if (g.size() != r.size()) continue;
    double mx = 0, err = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      mx = std::max(mx, std::fabs(double(r[i])));
      err = std::max(err, std::fabs(double(g[i]) - double(r[i])));
    }
    const double rel = mx > 0 ? err / mx : err;
    EXPECT_LE(rel, 1e-4) << label << ": " << name << " max err " << err << " of max " << mx;
    if (rel > worst) worst = rel, worst_name = name;
  }
  for (const auto& [name, g] : ours)
    EXPECT_TRUE(ref.count(name)) << label << ": gradient " << name << " is not in the fixture";
  std::printf("[ %s ] worst gradient error %.3g of its tensor's max |entry| (%s)\n", label.c_str(),
              worst, worst_name.c_str());
  return worst;
}

class TrainFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainFixture, LossesGradientsLoadsAndFiniteDifferences) {
  const std::string dir = fixture(GetParam());
  const json expected = json::parse(test::read_text(dir + "/expected.json"));
  auto model = train::load_train_model(dir);
  const train::Batch batch = train::read_batch_json(dir + "/batch.json");
  const float lambda = expected["lambda_mtp"].get<float>();
  const train::LossReport rep = model->forward_backward(batch, lambda);

  const double main = expected["loss_main"], total = expected["loss_total"];
  const double mtp = expected["loss_mtp"].is_null() ? 0.0 : expected["loss_mtp"].get<double>();
  EXPECT_NEAR(rep.loss_main, main, 1e-5 * main);
  EXPECT_NEAR(rep.loss_mtp, mtp, 1e-5 * std::max(mtp, 1e-30));
  EXPECT_NEAR(rep.loss_total, total, 1e-5 * total);
  std::printf("[ %s ] loss_main %.9g (ref %.9g) loss_mtp %.9g (ref %.9g)\n", GetParam().c_str(),
              rep.loss_main, main, rep.loss_mtp, mtp);

  std::map<std::string, const std::vector<float>*> ours;
  std::map<std::string, const train::Param*> by_name;
  for (const train::Param& p : model->params()) {
    by_name[p.name] = &p;
    if (p.trainable) ours[p.name] = &p.grad;
    else
      for (float g : p.grad) EXPECT_EQ(g, 0.0f) << p.name << " is not trained by gradients";
  }
  const auto ref = read_tensors(dir + "/grads.safetensors");
  check_grads(ref, ours, GetParam());

  // Expert loads, gate by gate in layer order, and the bias each belongs to.
  const json& loads = expected["expert_loads"];
  ASSERT_EQ(rep.expert_loads.size(), loads.size());
  ASSERT_EQ(rep.bias_param.size(), loads.size());
  size_t k = 0;
  for (auto& [gate, counts] : loads.items()) {
    EXPECT_EQ(rep.expert_loads[k], counts.get<std::vector<int64_t>>()) << gate;
    const std::string bias = gate + ".e_score_correction_bias";
    if (by_name.count(bias)) {
      ASSERT_GE(rep.bias_param[k], 0);
      EXPECT_EQ(model->params()[size_t(rep.bias_param[k])].name, bias);
    } else {
      EXPECT_EQ(rep.bias_param[k], -1) << gate;
    }
    ++k;
  }

  // The fixture's spot checks: our gradient against its analytic value (tensor tolerance)
  // and against its central finite difference.
  for (const json& fd : expected["finite_difference"]) {
    const std::string name = fd["tensor"];
    ASSERT_TRUE(by_name.count(name)) << name;
    const train::Param& p = *by_name[name];
    int64_t flat = 0;
    const auto idx = fd["index"].get<std::vector<int64_t>>();
    ASSERT_EQ(idx.size(), p.shape.size()) << name;
    for (size_t d = 0; d < idx.size(); ++d) flat = flat * p.shape[d] + idx[d];
    double mx = 0;
    for (float v : ref.at(name)) mx = std::max(mx, std::fabs(double(v)));
    const double g = p.grad[size_t(flat)];
    EXPECT_NEAR(g, fd["analytic"].get<double>(), 1e-4 * mx + 1e-9) << name;
    EXPECT_NEAR(g, fd["numeric"].get<double>(), 2e-5) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TrainFixture,
                         ::testing::Values("v3-train-tiny", "v2lite-train-tiny"));

TEST(TrainGradCli, WritesFixtureGradientsAndPrintsLosses) {
  const std::string dir = fixture("v3-train-tiny");
  const fs::path tmp = fs::temp_directory_path() / ("whale_grad_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  const std::string out = (tmp / "grads.safetensors").string();
  const std::string cmd = std::string(WHALE_BIN) + " grad -m " + dir + " --batch " + dir +
                          "/batch.json -o " + out + " -t 2 >" + (tmp / "stdout").string();
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << cmd;
  const json expected = json::parse(test::read_text(dir + "/expected.json"));
  std::istringstream lines(test::read_text((tmp / "stdout").string()));
  std::map<std::string, double> printed;
  std::string key;
  double value;
  while (lines >> key >> value) printed[key] = value;
  ASSERT_EQ(printed.size(), 3u);
  for (const char* k : {"loss_main", "loss_mtp", "loss_total"})
    EXPECT_NEAR(printed.at(k), expected[k].get<double>(), 1e-5 * expected[k].get<double>()) << k;

  const auto written = read_tensors(out);
  std::map<std::string, const std::vector<float>*> ours;
  for (const auto& [name, v] : written) ours[name] = &v;
  check_grads(read_tensors(dir + "/grads.safetensors"), ours, "whale grad");

  // A bad batch is a one-line error, not a crash.
  const std::string bad = (tmp / "bad.json").string();
  std::ofstream(bad) << R"({"tokens": [[1, 2]], "targets": [[2, 99999]]})";
  const int rc2 = std::system((std::string(WHALE_BIN) + " grad -m " + dir + " --batch " + bad +
                               " -o " + out + " 2>" + (tmp / "stderr").string()).c_str());
  EXPECT_TRUE(WIFEXITED(rc2) && WEXITSTATUS(rc2) == 1);
  EXPECT_NE(test::read_text((tmp / "stderr").string()).find("whale: error: batch"), std::string::npos);
  fs::remove_all(tmp);
}

TEST(TrainLoad, BatchJsonErrorsNameTheFile) {
  const fs::path f = fs::temp_directory_path() / ("whale_batch_" + std::to_string(::getpid()) + ".json");
  auto error_of = [&](const std::string& text) {
    std::ofstream(f) << text;
    try {
      train::read_batch_json(f.string());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of(R"({"tokens": [[1, 2], [3]], "targets": [[2, 3], [4]]})").find("tokens[1]"), std::string::npos);
  EXPECT_NE(error_of(R"({"tokens": [[1, 2]], "targets": [[2, -3]]})").find("targets[0]"), std::string::npos);
  EXPECT_NE(error_of(R"({"tokens": [[1, 2]]})").find("'targets'"), std::string::npos);
  EXPECT_NE(error_of("[1, 2").find("not a valid JSON"), std::string::npos);
  std::ofstream(f) << R"({"tokens": [[1, 2], [3, 4]], "targets": [[2, 3], [4, 5]]})";
  const train::Batch b = train::read_batch_json(f.string());
  EXPECT_EQ(b.B, 2);
  EXPECT_EQ(b.T, 2);
  EXPECT_EQ(b.tokens, (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(b.targets, (std::vector<int32_t>{2, 3, 4, 5}));
  fs::remove(f);
}

// The training forward and the inference engine (absorbed MLA, KV cache) agree on the loss of
// the same weights: one model, two code paths over the shared rope/routing/config code.
TEST(TrainLoad, MainLossMatchesTheInferenceEngine) {
  const std::string dir = (fs::path(test::fixtures_dir()) / "models/deepseek-v3-tiny/hf").string();
  auto train_model = train::load_train_model(dir);
  auto infer = load_model(dir);
  const ModelConfig& c = infer->config();
  const train::Batch batch = train::read_batch_json(fixture("v3-train-tiny") + "/batch.json");
  ASSERT_LE(256, c.n_vocab);
  double total = 0;
  for (int64_t b = 0; b < batch.B; ++b) {
    KvCache kv(c, batch.T);
    std::vector<int32_t> toks(batch.tokens.begin() + b * batch.T, batch.tokens.begin() + (b + 1) * batch.T);
    std::vector<int32_t> pos(size_t(batch.T));
    for (int64_t t = 0; t < batch.T; ++t) pos[size_t(t)] = int32_t(t);
    std::vector<float> logits(size_t(batch.T * c.n_vocab));
    infer->forward(toks, pos, kv, logits.data(), true);
    for (int64_t t = 0; t < batch.T; ++t) {
      const float* z = logits.data() + t * c.n_vocab;
      double mx = z[0], sum = 0;
      for (int64_t v = 0; v < c.n_vocab; ++v) mx = std::max(mx, double(z[v]));
      for (int64_t v = 0; v < c.n_vocab; ++v) sum += std::exp(double(z[v]) - mx);
      total += mx + std::log(sum) - z[batch.targets[size_t(b * batch.T + t)]];
    }
  }
  const double infer_loss = total / double(batch.B * batch.T);
  const train::LossReport rep = train_model->forward_backward(batch, 0.3f);
  EXPECT_NEAR(rep.loss_main, infer_loss, 1e-5 * infer_loss);
  EXPECT_GT(rep.loss_mtp, 0.0);  // this folder carries DeepSeek's MTP layer too
}

// safetensors_writer → load_train_model round trip, and the loader's errors.
TEST(TrainLoad, WriterRoundTripAndMissingOrMisshapenTensors) {
  const std::string src = fixture("v3-train-tiny");
  auto model = train::load_train_model(src);
  const fs::path dir = fs::temp_directory_path() / ("whale_train_load_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(src + "/config.json", dir / "config.json");
  auto write = [&](const std::string& skip, const std::string& reshape) {
    std::vector<F32TensorView> views;
    for (const train::Param& p : model->params()) {
      if (p.name == skip) continue;
      F32TensorView v{p.name, p.shape, p.value.data()};
      if (p.name == reshape) v.shape = {int64_t(p.value.size())};
      views.push_back(v);
    }
    write_safetensors_f32((dir / "model.safetensors").string(), views, {{"format", "pt"}});
  };
  write("", "");
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.tmp"));
  // Stray files beside model.safetensors (gradients, checkpoints) are not loaded.
  fs::copy_file(src + "/grads.safetensors", dir / "grads.safetensors");
  auto again = train::load_train_model(dir.string());
  ASSERT_EQ(again->params().size(), model->params().size());
  for (size_t i = 0; i < model->params().size(); ++i) {
    EXPECT_EQ(again->params()[i].name, model->params()[i].name);
    EXPECT_EQ(again->params()[i].value, model->params()[i].value);
    EXPECT_EQ(again->params()[i].trainable, model->params()[i].trainable);
    EXPECT_EQ(again->params()[i].decay, model->params()[i].shape.size() >= 2);
  }
  auto error_of = [&] {
    try {
      train::load_train_model(dir.string());
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  write("model.layers.2.self_attn.kv_b_proj.weight", "");
  EXPECT_NE(error_of().find("'model.layers.2.self_attn.kv_b_proj.weight' is missing"), std::string::npos);
  write("", "model.layers.3.eh_proj.weight");
  EXPECT_NE(error_of().find("model.layers.3.eh_proj.weight' is [8192]"), std::string::npos) << error_of();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace whale
