// What a training run shows and leaves behind:
//   - OUT/log.csv: one row per step (losses with 17 significant digits, so two runs can be
//     compared bit for bit), rewritten on resume to end at the checkpoint's step;
//   - OUT/loss.png: the loss curve, drawn by gnuplot (Debian gnuplot-nox) from the CSV; when
//     gnuplot is missing a warning is printed once and no PNG is written;
//   - progress on stderr: a bar redrawn in place when stderr is a terminal, else one line
//     every `every` steps (for logs).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "train/load_balance.h"

namespace whale::train {

struct StepRecord {
  int64_t step = 0;
  double loss = 0, loss_main = 0, loss_mtp = 0, loss_aux = 0;
  double lr = 0, grad_norm = 0;
  double tokens_per_s = 0, elapsed_s = 0;
  LoadStats loads;
};

class CsvLog {
 public:
  // Opens OUT/log.csv, keeping the rows of steps ≤ keep_until_step (0: starts afresh).
  CsvLog(const std::string& out_dir, int64_t keep_until_step);
  ~CsvLog();
  void append(const StepRecord& r);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

// Draws the CSV's loss columns into png_path (via a tmp file + rename). Returns false (after
// a one-time warning) when gnuplot is not installed or fails.
bool plot_loss_png(const std::string& csv_path, const std::string& png_path);

class Progress {
 public:
  Progress(int64_t first_step, int64_t last_step, int64_t every, bool quiet);
  void update(const StepRecord& r);
  void message(const std::string& line);  // a log line that does not break the bar
  void finish();

 private:
  int64_t first_, last_, every_;
  bool quiet_, tty_;
  bool bar_drawn_ = false;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace whale::train
