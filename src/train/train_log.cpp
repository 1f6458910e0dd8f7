// CSV log, loss plot and progress display: see train_log.h.
#include "train/train_log.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"

namespace whale::train {

namespace {
const char* kHeader = "step,loss,loss_main,loss_mtp,lr,grad_norm,tokens_per_s,elapsed_s,max_load_ratio,idle_experts,loss_aux";
}

CsvLog::CsvLog(const std::string& out_dir, int64_t keep_until_step) : path_(out_dir + "/log.csv") {
  std::string kept = std::string(kHeader) + "\n";
  if (keep_until_step > 0) {
    std::ifstream in(path_);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      long long step = 0;
      if (std::sscanf(line.c_str(), "%lld,", &step) == 1 && step <= keep_until_step) kept += line + "\n";
    }
  }
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
    if (!out) fail("{}: cannot write", tmp);
  }
  std::filesystem::rename(tmp, path_);
  f_ = std::fopen(path_.c_str(), "a");
  if (!f_) fail("{}: cannot open for appending", path_);
}

CsvLog::~CsvLog() {
  if (f_) std::fclose(f_);
}

void CsvLog::append(const StepRecord& r) {
  fmt::print(f_, "{},{:.17g},{:.17g},{:.17g},{:.9g},{:.9g},{:.1f},{:.3f},{:.4f},{},{:.17g}\n", r.step,
             r.loss, r.loss_main, r.loss_mtp, r.lr, r.grad_norm, r.tokens_per_s, r.elapsed_s,
             r.loads.worst, r.loads.idle_experts, r.loss_aux);
  std::fflush(f_);
}

bool plot_loss_png(const std::string& csv_path, const std::string& png_path) {
  static bool warned = false;
  auto warn = [&](const std::string& why) {
    if (!warned) fmt::print(stderr, "train: warning: {}; no loss plot (apt-get install gnuplot-nox)\n", why);
    warned = true;
    return false;
  };
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) return warn("gnuplot not found");
  auto quote = [](const std::string& s) {  // gnuplot single-quoted string: '' escapes '
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
  };
  const std::string tmp = png_path + ".tmp";
  std::FILE* gp = ::popen("gnuplot 2>/dev/null", "w");
  if (!gp) return warn("cannot start gnuplot");
  fmt::print(gp,
             "set terminal png size 960,540\n"
             "set output {}\n"
             "set datafile separator ','\n"
             "set title 'training loss'\n"
             "set xlabel 'step'\nset ylabel 'loss'\nset grid\nset key top right\n"
             "plot {} using 1:2 with lines lw 2 lc rgb '#202020' title 'total', "
             "'' using 1:3 with lines lc rgb '#1f77b4' title 'main', '' using 1:4 with lines lc rgb '#d62728' title 'MTP'\n"
             "unset output\n",
             quote(tmp), quote(csv_path));
  if (::pclose(gp) != 0) {
    std::remove(tmp.c_str());
    return warn("gnuplot failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, png_path, ec);
  return !ec;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = int64_t(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

Progress::Progress(int64_t first_step, int64_t last_step, int64_t every, bool quiet)
    : first_(first_step), last_(last_step), every_(std::max<int64_t>(every, 1)), quiet_(quiet),
      tty_(::isatty(STDERR_FILENO) == 1) {}

void Progress::update(const StepRecord& r) {
  if (quiet_) return;
  const int64_t done = r.step - first_ + 1, todo = last_ - first_ + 1;
  const double eta = done > 0 ? r.elapsed_s / double(done) * double(last_ - r.step) : 0;
  const std::string stats =
      fmt::format("step {}/{}  loss {:.4f}  lr {:.2e}  |g| {:.3f}  {:.0f} tok/s  ETA {}", r.step, last_,
                  r.loss, r.lr, r.grad_norm, r.tokens_per_s, format_duration(eta));
  if (tty_) {
    const int width = 30;
    const int fill = todo > 0 ? int(width * done / todo) : width;
    fmt::print(stderr, "\r\033[2K[{}{}] {}", std::string(size_t(fill), '#'),
               std::string(size_t(width - fill), '.'), stats);
    std::fflush(stderr);
    bar_drawn_ = true;
  } else if (r.step % every_ == 0 || r.step == last_ || r.step == first_) {
    fmt::print(stderr, "train: {}  max/mean expert load {}\n", stats, format_load_stats(r.loads));
  }
}

void Progress::message(const std::string& line) {
  if (quiet_) return;
  if (bar_drawn_) fmt::print(stderr, "\r\033[2K");
  fmt::print(stderr, "train: {}\n", line);
  bar_drawn_ = false;
}

void Progress::finish() {
  if (bar_drawn_) fmt::print(stderr, "\n");
  bar_drawn_ = false;
}

}  // namespace whale::train
