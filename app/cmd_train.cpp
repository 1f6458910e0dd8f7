// whale train --config CFG.json --data DIR -o OUT [--steps N] [--init HF_DIR] [-t N] [--no-plot]
//
// Pre-trains a DeepSeek-V3-architecture model from scratch (train/trainer.h). CFG.json:
//   {
//     "config": { Hugging Face DeepseekV3/V2 config.json keys },   the model
//     "batch": 4, "seq": 256,                 sequences × tokens per step
//     "lambda_mtp": 0.3,                      weight of the MTP loss
//     "seq_aux_alpha": 0,                     α of the sequence-wise balance loss (0: off)
//     "adamw": {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1},
//     "clip_norm": 1.0, "steps": 1000, "warmup": 100, "min_lr_ratio": 0.1,
//     "gamma": 0.001,                         auxiliary-loss-free balancing speed
//     "seed": 1, "init_seed": 1,              data order, initial weights
//     "checkpoint_every": 100, "keep_checkpoints": 2, "log_every": 10
//   }
// (every key but "config" is optional; the training benchmark's bench-config.json is a valid
// CFG). DIR holds tokens.bin (and usually the tokenizer) from `whale corpus`.
//
// OUT receives config.json, the tokenizer files, checkpoint-<step>.gguf (for `whale run`) and
// .state (for resuming), latest, log.csv and loss.png. Running the same command again after
// an interruption (even kill -9) resumes from the newest checkpoint, and the losses it logs
// equal those of an uninterrupted run bit for bit.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>

#include "commands.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "file_io.h"
#include "text/tokenizer.h"
#include "train/checkpoint.h"
#include "train/gguf_export.h"
#include "train/train_model.h"
#include "train/trainer.h"

namespace whale::app {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TrainArgs {
  std::string config, data, out, init;
  int64_t steps = 0;  // 0: the config's
  int threads = 0;
  bool no_plot = false;
};

template <typename T>
T get(const json& j, const char* key, T def, const std::string& path) {
  if (!j.contains(key)) return def;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    fail("{}: '{}' has the wrong type", path, key);
  }
}

train::TrainerOptions read_options(const json& j, const std::string& path) {
  train::TrainerOptions o;
  o.batch = get<int64_t>(j, "batch", o.batch, path);
  o.seq = get<int64_t>(j, "seq", o.seq, path);
  o.mtp_lambda = get<float>(j, "lambda_mtp", o.mtp_lambda, path);
  o.seq_aux_alpha = get<double>(j, "seq_aux_alpha", o.seq_aux_alpha, path);
  if (j.contains("adamw")) {
    const json& a = j["adamw"];
    if (!a.is_object()) fail("{}: 'adamw' should be an object", path);
    o.adamw.lr = get<double>(a, "lr", o.adamw.lr, path);
    const auto betas = get<std::vector<double>>(a, "betas", {o.adamw.beta1, o.adamw.beta2}, path);
    if (betas.size() != 2) fail("{}: 'adamw.betas' should hold two numbers", path);
    o.adamw.beta1 = betas[0], o.adamw.beta2 = betas[1];
    o.adamw.eps = get<double>(a, "eps", o.adamw.eps, path);
    o.adamw.weight_decay = get<double>(a, "weight_decay", o.adamw.weight_decay, path);
  }
  o.adamw.clip_norm = get<double>(j, "clip_norm", o.adamw.clip_norm, path);
  o.steps = get<int64_t>(j, "steps", o.steps, path);
  o.warmup = get<int64_t>(j, "warmup", std::min<int64_t>(100, o.steps / 10), path);
  o.min_lr_ratio = get<double>(j, "min_lr_ratio", o.min_lr_ratio, path);
  o.gamma = get<double>(j, "gamma", o.gamma, path);
  o.seed = get<uint64_t>(j, "seed", o.seed, path);
  o.checkpoint_every = get<int64_t>(j, "checkpoint_every", o.checkpoint_every, path);
  o.keep_checkpoints = get<int64_t>(j, "keep_checkpoints", o.keep_checkpoints, path);
  o.log_every = get<int64_t>(j, "log_every", o.log_every, path);
  return o;
}

void run_train(const TrainArgs& a) {
  if (a.threads < 0) fail("--threads must be positive, not {}", a.threads);
  if (a.threads > 0) ThreadPool::set_default_threads(a.threads);
  train::retain_freed_memory();
  const json cfg_json = json::parse(read_file(a.config), nullptr, false);
  if (cfg_json.is_discarded() || !cfg_json.is_object()) fail("{}: not a valid JSON object", a.config);
  if (!cfg_json.contains("config") || !cfg_json["config"].is_object())
    fail("{}: needs a \"config\" object (the model's Hugging Face config.json keys)", a.config);
  train::TrainerOptions opt = read_options(cfg_json, a.config);
  if (a.steps > 0) opt.steps = a.steps, opt.warmup = std::min(opt.warmup, a.steps);
  opt.out_dir = a.out;
  opt.plot = !a.no_plot;

  // OUT/config.json is the model's config; a resumed run must have the same one.
  fs::create_directories(a.out);
  const std::string model_cfg = a.out + "/config.json";
  json model = cfg_json["config"];
  const bool has_tokenizer = fs::exists(a.data + "/tokenizer.json");
  if (has_tokenizer) {  // the model's BOS/EOS are the tokenizer's unless the config says
    const auto tok = Tokenizer::from_hf(a.data);
    if (!model.contains("bos_token_id") && tok->bos() >= 0) model["bos_token_id"] = tok->bos();
    if (!model.contains("eos_token_id") && tok->eos() >= 0) model["eos_token_id"] = tok->eos();
    if (model.contains("vocab_size") && model["vocab_size"].is_number_integer() &&
        model["vocab_size"].get<int64_t>() < tok->n_vocab())
      fail("{}: vocab_size {} is smaller than the tokenizer's {} tokens ({})", a.config,
           model["vocab_size"].get<int64_t>(), tok->n_vocab(), a.data);
  }
  if (fs::exists(model_cfg)) {
    const json before = json::parse(read_file(model_cfg), nullptr, false);
    if (before != model)
      fail("{} holds a run of another model configuration than {} (use another -o)", a.out, a.config);
  } else {
    train::write_file_atomic(model_cfg, model.dump(2) + "\n");
  }
  const ModelConfig cfg = config_from_hf_json(model_cfg);

  std::string tokenizer_dir;
  if (has_tokenizer) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      if (fs::exists(a.data + "/" + f)) train::write_file_atomic(a.out + "/" + f, read_file(a.data + "/" + f));
    tokenizer_dir = a.out;
  }
  const train::TokenDataset data = train::TokenDataset::load(a.data, cfg.n_vocab);
  const uint64_t init_seed = get<uint64_t>(cfg_json, "init_seed", 1, a.config);
  std::unique_ptr<train::TrainModel> m =
      a.init.empty() ? train::init_train_model(cfg, init_seed) : train::load_train_model(a.init);
  fmt::print(stderr, "train: {} layers, {} tokens of data, {} steps of {} × {} tokens -> {}\n", cfg.n_layer,
             data.tokens().size(), opt.steps, opt.batch, opt.seq, a.out);

  const train::GgufExportOptions gguf{.model_name = "whale " + fs::path(a.out).filename().string(),
                                      .tokenizer_dir = tokenizer_dir};
  const train::TrainResult r = train::run_training(*m, data, opt, [&](const std::vector<train::Param>& p, const std::string& path) {
    train::export_gguf(cfg, p, path, gguf);
  });
  fmt::print(stderr, "train: done at step {} (loss {:.4f}); model {}.gguf\n", r.last_step, r.last_loss,
             train::checkpoint_stem(a.out, r.last_step));
}

}  // namespace

void register_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "pre-train a DeepSeek-V3-architecture model (resumes from OUT's last checkpoint)");
  cmd->add_option("--config", a->config, "training configuration (JSON; see README)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "data folder (tokens.bin from `whale corpus`)")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("-o,--output", a->out, "output folder (checkpoints, log.csv, loss.png)")->required();
  cmd->add_option("--steps", a->steps, "total steps (overrides the config's)");
  cmd->add_option("--init", a->init, "start from a Hugging Face model folder instead of random weights");
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_flag("--no-plot", a->no_plot, "do not draw loss.png");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace whale::app
