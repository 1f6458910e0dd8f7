// The pre-training loop, written against TrainModel so any model (the deepseek2 gradient
// engine, a test mock) can be trained. Each step:
//   batch (BatchSampler) → forward_backward → clip global grad norm → AdamW at the scheduled
//   lr → auxiliary-loss-free bias update from the batch's expert loads → log.
// Every `checkpoint_every` steps and at the end: state file, then the exporter's model file
// (GGUF), then OUT/latest (checkpoint.h). A run whose OUT already holds a checkpoint resumes
// from it: weights, moments, step and data cursor come back exactly, and since the batch order
// is a function of (seed, cursor) and every update is sequential, the losses after a resume
// equal those of an uninterrupted run bit for bit (provided the model's forward_backward is
// deterministic).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/data_loader.h"
#include "train/optimizer.h"
#include "train/train_log.h"
#include "train/train_model.h"

namespace whale::train {

struct TrainerOptions {
  std::string out_dir;          // required: checkpoints, log.csv, loss.png
  int64_t steps = 100;          // total optimizer steps of the run
  int64_t batch = 4, seq = 256; // B sequences of T tokens per step
  float mtp_lambda = 0.3f;      // weight of the MTP loss
  double seq_aux_alpha = 0;     // α of the sequence-wise balance loss (0: off)
  AdamWConfig adamw;
  int64_t warmup = 0;           // linear warm-up steps
  double min_lr_ratio = 0.1;    // cosine floor, as a fraction of adamw.lr
  double gamma = 0.001;         // bias update speed (0: no balancing)
  uint64_t seed = 1;            // data order
  int64_t checkpoint_every = 100;  // and always at the last step
  int64_t keep_checkpoints = 2;
  int64_t log_every = 10;       // progress lines when stderr is not a terminal
  bool quiet = false;           // no progress output at all (tests)
  bool plot = true;             // loss.png via gnuplot at each checkpoint and at the end
  // Test hook: return right after this step (before any later checkpoint), as a kill would.
  int64_t stop_after = -1;
  std::function<void(const StepRecord&)> on_step;  // after each step's update
};

// Writes the inference model of a checkpoint (e.g. GGUF); may be empty.
using ModelExporter = std::function<void(const std::vector<Param>& params, const std::string& path)>;

struct TrainResult {
  int64_t resumed_from = 0;     // step of the checkpoint resumed from (0: fresh start)
  int64_t last_step = 0;
  double last_loss = 0;
};

TrainResult run_training(TrainModel& model, const TokenDataset& data, const TrainerOptions& opt,
                  const ModelExporter& exporter = {});

}  // namespace whale::train
