// TrainModel on f32 master weights: the parameter list (Hugging Face names, in the order of
// deepseek_tensor_requests), loading from a Hugging Face folder, seeded initialisation, and
// forward_backward through DeepseekEngine<float>.
#include "train/train_model.h"

#include <cstring>
#include <malloc.h>
#include <filesystem>
#include <map>
#include <random>

#include "core/error.h"
#include "core/threadpool.h"
#include "formats/safetensors.h"
#include "train/deepseek_train.h"

namespace whale::train {

namespace {

namespace fs = std::filesystem;

void keep_freed_memory();

class DeepseekTrainModel final : public TrainModel {
 public:
  DeepseekTrainModel(ModelConfig cfg, std::vector<Param> params)
      : cfg_(std::move(cfg)), params_(std::move(params)) {
    keep_freed_memory();
  }

  const ModelConfig& config() const override { return cfg_; }
  std::vector<Param>& params() override { return params_; }
  void set_seq_aux_alpha(double alpha) override {
    if (!(alpha >= 0)) fail("seq_aux_alpha must be >= 0, not {}", alpha);
    if (alpha > 0 && cfg_.n_expert == 0) fail("seq_aux_alpha: this model has no routed experts");
    seq_aux_alpha_ = alpha;
  }

  LossReport forward_backward(const Batch& batch, float mtp_lambda) override {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < params_.size(); ++i) {
      Param& p = params_[i];
      if (p.grad.size() != p.value.size()) p.grad.assign(p.value.size(), 0.0f);
      index.emplace(p.name, i);
    }
    // Zeroing ~40 MB of gradients is a step's largest serial memset: spread it over the pool.
    ThreadPool::global().parallel_for(int64_t(params_.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) std::fill(params_[size_t(i)].grad.begin(), params_[size_t(i)].grad.end(), 0.0f);
    });
    Binder<float> bind = [&](const TensorRequest& r) -> Slot<float> {
      auto it = index.find(r.name);
      if (it == index.end()) {
        if (r.optional) return {};
        fail("model: parameter '{}' is missing", r.name);
      }
      Param& p = params_[it->second];
      int64_t numel = 1;
      for (int64_t d : r.shape) numel *= d;
      if (p.shape != r.shape || int64_t(p.value.size()) != numel)
        fail("model: parameter '{}' has the wrong shape or size", r.name);
      return {p.value.data(), p.trainable ? p.grad.data() : nullptr};
    };
    DeepseekEngine<float> engine(cfg_, bind);
    engine.set_seq_aux_alpha(seq_aux_alpha_);
    auto res = engine.forward_backward(batch, mtp_lambda);
    LossReport rep;
    rep.loss_main = res.loss_main;
    rep.loss_mtp = res.loss_mtp;
    rep.loss_aux = res.loss_aux;
    rep.loss_total = res.loss_total;
    rep.expert_loads = std::move(res.loads);
    for (const std::string& gate : res.gates) {
      auto it = index.find(gate + ".e_score_correction_bias");
      rep.bias_param.push_back(it == index.end() ? -1 : int64_t(it->second));
    }
    return rep;
  }

 private:
  ModelConfig cfg_;
  std::vector<Param> params_;
  double seq_aux_alpha_ = 0;
};

// Every step allocates the same large activation buffers again. glibc serves blocks above
// its mmap threshold with fresh mappings and returns them on free, so each step would pay
// page faults and kernel zeroing (~15% of a step on the benchmark). Serving them from the heap
// and keeping freed memory lets the next step reuse the pages. Process-wide, set once.
void keep_freed_memory() {
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)done;
}

Param make_param(const TensorRequest& r) {
  Param p;
  p.name = r.name;
  p.shape = r.shape;
  int64_t numel = 1;
  for (int64_t d : r.shape) numel *= d;
  p.value.assign(size_t(numel), 0.0f);
  p.grad.assign(size_t(numel), 0.0f);
  p.trainable = r.trainable;
  p.decay = r.shape.size() >= 2;  // matrices; 1-D norm weights and biases are not decayed
  return p;
}

void to_f32(const TensorRef& t, float* out) {
  const int64_t n = t.numel();
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out, t.data, size_t(n) * 4);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      return;
    default:
      fail("{}: tensor '{}' is {}; training loads F32, BF16 or F16 weights", *t.file, t.name,
           dtype_name(t.dtype));
  }
}

}  // namespace

std::unique_ptr<TrainModel> load_train_model(const std::string& hf_dir) {
  const fs::path dir(hf_dir);
  ModelConfig cfg = config_from_hf_json((dir / "config.json").string());
  check_trainable_config(cfg, (dir / "config.json").string());
  // As Hugging Face loads: the shards of model.safetensors.index.json, else model.safetensors
  // (never every *.safetensors: training folders also hold gradients and checkpoints).
  std::unique_ptr<SafetensorsSet> set;
  std::unique_ptr<SafetensorsFile> single;
  std::map<std::string, const TensorRef*> tensors;
  if (fs::exists(dir / "model.safetensors.index.json")) {
    set = std::make_unique<SafetensorsSet>(hf_dir);
    tensors = set->all();
  } else {
    const fs::path file = dir / "model.safetensors";
    if (!fs::exists(file)) fail("{}: no model.safetensors or model.safetensors.index.json", hf_dir);
    single = std::make_unique<SafetensorsFile>(file.string());
    for (const TensorRef& t : single->tensors()) tensors.emplace(t.name, &t);
  }
  const bool has_bias = [&] {
    for (auto& [name, t] : tensors)
      if (name.ends_with(".mlp.gate.e_score_correction_bias")) return true;
    return false;
  }();
  std::vector<Param> params;
  for (const TensorRequest& r : deepseek_tensor_requests(cfg, has_bias)) {
    auto it = tensors.find(r.name);
    if (it == tensors.end()) fail("{}: tensor '{}' is missing", hf_dir, r.name);
    const TensorRef& t = *it->second;
    if (t.shape != r.shape) {
      TensorRef want;
      want.shape = r.shape;
      fail("{}: tensor '{}' is {}, the config needs {}", *t.file, r.name, t.shape_str(),
           want.shape_str());
    }
    Param p = make_param(r);
    to_f32(t, p.value.data());
    params.push_back(std::move(p));
  }
  return std::make_unique<DeepseekTrainModel>(std::move(cfg), std::move(params));
}

std::unique_ptr<TrainModel> init_train_model(const ModelConfig& cfg, uint64_t seed) {
  check_trainable_config(cfg, "config");
  // DeepSeek-V3 routes with a correction bias exactly when it scores with sigmoids.
  const bool with_bias = cfg.scoring == ScoringFunc::Sigmoid && cfg.n_expert > 0;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<Param> params;
  for (const TensorRequest& r : deepseek_tensor_requests(cfg, with_bias)) {
    Param p = make_param(r);
    if (!r.trainable) {
      // correction bias: starts at 0
    } else if (r.shape.size() == 1) {
      std::fill(p.value.begin(), p.value.end(), 1.0f);  // norm weights
    } else {
      for (float& v : p.value) v = normal(rng);
    }
    params.push_back(std::move(p));
  }
  return std::make_unique<DeepseekTrainModel>(cfg, std::move(params));
}

void retain_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace whale::train
