// The training loop: see trainer.h.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/load_balance.h"

namespace whale::train {

namespace {

void validate(const TrainerOptions& o) {
  if (o.out_dir.empty()) fail("training needs an output folder (-o)");
  if (o.steps < 1) fail("steps must be at least 1, not {}", o.steps);
  if (o.warmup < 0 || o.warmup > o.steps) fail("warmup must be 0..steps ({}), not {}", o.steps, o.warmup);
  if (!(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1)) fail("min_lr_ratio must be in [0, 1], not {}", o.min_lr_ratio);
  if (!(o.gamma >= 0)) fail("gamma must be ≥ 0, not {}", o.gamma);
  if (o.checkpoint_every < 0) fail("checkpoint_every must be ≥ 0, not {}", o.checkpoint_every);
  if (o.keep_checkpoints < 1) fail("keep_checkpoints must be ≥ 1, not {}", o.keep_checkpoints);
  if (!(o.mtp_lambda >= 0)) fail("mtp_lambda must be ≥ 0, not {}", o.mtp_lambda);
  if (!(o.seq_aux_alpha >= 0)) fail("seq_aux_alpha must be ≥ 0, not {}", o.seq_aux_alpha);
}

}  // namespace

TrainResult run_training(TrainModel& model, const TokenDataset& data, const TrainerOptions& o,
                  const ModelExporter& exporter) {
  validate(o);
  model.set_seq_aux_alpha(o.seq_aux_alpha);
  std::filesystem::create_directories(o.out_dir);
  std::vector<Param>& params = model.params();
  AdamW adam(params, o.adamw);
  BatchSampler sampler(data, o.batch, o.seq, o.seed);
  const LrSchedule schedule{.lr = o.adamw.lr, .warmup = o.warmup, .total = o.steps,
                            .min_ratio = o.min_lr_ratio};

  TrainResult result;
  if (const auto latest = latest_checkpoint(o.out_dir)) {
    const std::string path = checkpoint_stem(o.out_dir, *latest) + ".state";
    const TrainCounters c = load_train_state(path, params, adam);
    if (c.step != *latest) fail("{}: holds step {}, {}/latest says {}", path, c.step, o.out_dir, *latest);
    if (c.seed != o.seed) fail("{}: was trained with data seed {}, this run has {}", path, c.seed, o.seed);
    sampler.seek(c.data_cursor);
    result.resumed_from = c.step;
  }
  prune_checkpoints(o.out_dir, o.keep_checkpoints);  // stale .tmp files of a killed run
  const int64_t first = result.resumed_from + 1;
  CsvLog csv(o.out_dir, result.resumed_from);
  Progress progress(first, o.steps, o.log_every, o.quiet);
  if (result.resumed_from > 0)
    progress.message(fmt::format("resuming from step {} ({})", result.resumed_from, o.out_dir));
  if (first > o.steps) {
    progress.message(fmt::format("nothing to do: step {} of {} already reached", result.resumed_from, o.steps));
    result.last_step = result.resumed_from;
    return result;
  }

  auto checkpoint = [&](int64_t step) {
    const std::string stem = checkpoint_stem(o.out_dir, step);
    save_train_state(stem + ".state", params, adam,
                     TrainCounters{.step = step, .data_cursor = sampler.cursor(), .seed = o.seed});
    if (exporter) exporter(params, stem + ".gguf");
    set_latest_checkpoint(o.out_dir, step);
    prune_checkpoints(o.out_dir, o.keep_checkpoints);
    if (o.plot) plot_loss_png(csv.path(), o.out_dir + "/loss.png");
  };

  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  int64_t tokens = 0;
  for (int64_t step = first; step <= o.steps; ++step) {
    const Batch batch = sampler.next();
    const LossReport rep = model.forward_backward(batch, o.mtp_lambda);
    if (!std::isfinite(rep.loss_total)) fail("step {}: loss is {} (diverged)", step, rep.loss_total);
    const double norm = clip_grad_norm(params, o.adamw.clip_norm);
    const double lr = schedule.at(step);
    adam.step(params, lr);
    if (o.gamma > 0) update_balance_bias(params, rep, o.gamma);

    tokens += batch.B * batch.T;
    const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
    StepRecord r{.step = step, .loss = rep.loss_total, .loss_main = rep.loss_main,
                 .loss_mtp = rep.loss_mtp, .loss_aux = rep.loss_aux, .lr = lr, .grad_norm = norm,
                 .tokens_per_s = elapsed > 0 ? double(tokens) / elapsed : 0, .elapsed_s = elapsed,
                 .loads = load_stats(rep)};
    csv.append(r);
    progress.update(r);
    if (o.on_step) o.on_step(r);
    result.last_step = step, result.last_loss = rep.loss_total;
    if (step == o.stop_after) return result;
    if (step == o.steps || (o.checkpoint_every > 0 && step % o.checkpoint_every == 0)) {
      checkpoint(step);
      progress.message(fmt::format("step {}: checkpoint {} (loss {:.4f}, max/mean expert load {})", step,
                                   checkpoint_stem(o.out_dir, step), rep.loss_total,
                                   format_load_stats(r.loads)));
    }
  }
  progress.finish();
  return result;
}

}  // namespace whale::train
