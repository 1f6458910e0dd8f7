// Training checkpoints in an output folder OUT:
//   OUT/checkpoint-<step>.state   everything a resume needs: master weights, AdamW moments and
//                                 step count, the data cursor, the seed (safetensors layout:
//                                 "value.<name>", "adam_m.<name>", "adam_v.<name>" F32 tensors,
//                                 counters in __metadata__; readable by any safetensors tool)
//   OUT/checkpoint-<step>.gguf    the model for inference (`whale run`, llama.cpp), written by
//                                 the caller's exporter (see gguf_export.h)
//   OUT/latest                    the step of the newest complete checkpoint, as text
// Every file is written to "<name>.tmp", flushed to disk and renamed; `latest` is replaced
// last, so a kill -9 at any moment leaves it naming a complete checkpoint.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "train/optimizer.h"
#include "train/train_model.h"

namespace whale::train {

struct TrainCounters {
  int64_t step = 0;         // optimizer steps done
  int64_t data_cursor = 0;  // windows consumed (BatchSampler::cursor)
  uint64_t seed = 0;        // data-order seed
};

std::string checkpoint_stem(const std::string& out_dir, int64_t step);  // OUT/checkpoint-000100

void save_train_state(const std::string& path, const std::vector<Param>& params, AdamW& opt,
                      const TrainCounters& counters);
// Restores values, moments and counters; the parameter names and shapes must match.
TrainCounters load_train_state(const std::string& path, std::vector<Param>& params, AdamW& opt);

std::optional<int64_t> latest_checkpoint(const std::string& out_dir);
void set_latest_checkpoint(const std::string& out_dir, int64_t step);
// Removes checkpoint files older than the newest `keep` (keep ≥ 1) and the .tmp files of an
// interrupted write.
void prune_checkpoints(const std::string& out_dir, int64_t keep);

// Writes `bytes` to path atomically (tmp file, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace whale::train
