// Checkpoint files: see checkpoint.h.
#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap_file.h"

namespace whale::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// An open "<path>.tmp" that becomes `path` on commit() (after fsync) or disappears.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) fail("{}: cannot create", tmp_);
  }
  ~AtomicFile() {
    if (f_) std::fclose(f_), std::remove(tmp_.c_str());
  }
  void write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) fail("{}: write error (disk full?)", tmp_);
  }
  void commit() {
    const bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
    const bool closed = std::fclose(f_) == 0;
    f_ = nullptr;
    if (!ok || !closed) {
      std::remove(tmp_.c_str());
      fail("{}: write error (disk full?)", tmp_);
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail("{}: cannot rename into place", path_);
    // Make the rename itself durable.
    const std::string dir = fs::path(path_).parent_path().string();
    const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) ::fsync(fd), ::close(fd);
  }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

const char* kFormat = "whale-train-state-1";

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

std::string checkpoint_stem(const std::string& out_dir, int64_t step) {
  return fmt::format("{}/checkpoint-{:06d}", out_dir, step);
}

void save_train_state(const std::string& path, const std::vector<Param>& params, AdamW& opt,
                      const TrainCounters& c) {
  // Tensor order in the file: value, adam_m, adam_v per parameter.
  struct Entry {
    std::string name;
    const Param* p;
    const std::vector<float>* data;
  };
  std::vector<Entry> entries;
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    entries.push_back({"value." + p.name, &p, &p.value});
    if (p.trainable) {
      entries.push_back({"adam_m." + p.name, &p, &opt.m()[i]});
      entries.push_back({"adam_v." + p.name, &p, &opt.v()[i]});
    }
  }
  json header = json::object();
  header["__metadata__"] = {{"format", kFormat},
                            {"step", std::to_string(c.step)},
                            {"data_cursor", std::to_string(c.data_cursor)},
                            {"seed", std::to_string(c.seed)},
                            {"adam_t", std::to_string(opt.t())}};
  uint64_t off = 0;
  for (const Entry& e : entries) {
    const uint64_t n = e.data->size() * 4;
    header[e.name] = {{"dtype", "F32"}, {"shape", e.p->shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  const uint64_t hlen = h.size();
  AtomicFile f(path);
  f.write(&hlen, 8);
  f.write(h.data(), h.size());
  for (const Entry& e : entries) f.write(e.data->data(), e.data->size() * 4);
  f.commit();
}

TrainCounters load_train_state(const std::string& path, std::vector<Param>& params, AdamW& opt) {
  MappedFile file(path);
  const uint8_t* base = file.data();
  uint64_t hlen = 0;
  if (file.size() < 8) fail("{}: too small for a training state", path);
  std::memcpy(&hlen, base, 8);
  if (hlen > file.size() - 8) fail("{}: header length {} exceeds the file", path, hlen);
  json header = json::parse(base + 8, base + 8 + hlen, nullptr, false);
  if (header.is_discarded() || !header.is_object() || !header.contains("__metadata__"))
    fail("{}: not a whale training state", path);
  const json& meta = header["__metadata__"];
  if (meta.value("format", "") != kFormat) fail("{}: not a whale training state ({})", path, kFormat);
  auto counter = [&](const char* key) -> int64_t {
    try {
      return std::stoll(meta.at(key).get<std::string>());
    } catch (const std::exception&) {
      fail("{}: metadata '{}' missing or not a number", path, key);
    }
  };
  const uint8_t* data = base + 8 + hlen;
  const uint64_t data_bytes = file.size() - 8 - hlen;
  auto read = [&](const std::string& name, const Param& p, std::vector<float>& dst) {
    if (!header.contains(name)) fail("{}: no tensor '{}' (checkpoint of another model?)", path, name);
    const json& t = header[name];
    if (t.value("dtype", "") != "F32" || t["shape"].get<std::vector<int64_t>>() != p.shape)
      fail("{}: tensor '{}' has another shape or type than the model's", path, name);
    const uint64_t b = t["data_offsets"][0], e = t["data_offsets"][1];
    if (b > e || e > data_bytes || e - b != dst.size() * 4)
      fail("{}: tensor '{}' has bad data offsets", path, name);
    std::memcpy(dst.data(), data + b, e - b);
  };
  size_t n_tensors = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    Param& p = params[i];
    read("value." + p.name, p, p.value), ++n_tensors;
    if (!p.trainable) continue;
    opt.m()[i].resize(p.value.size()), opt.v()[i].resize(p.value.size());
    read("adam_m." + p.name, p, opt.m()[i]);
    read("adam_v." + p.name, p, opt.v()[i]);
    n_tensors += 2;
  }
  if (header.size() - 1 != n_tensors)
    fail("{}: holds {} tensors, the model has {} (checkpoint of another model?)", path,
         header.size() - 1, n_tensors);
  opt.set_t(counter("adam_t"));
  return TrainCounters{.step = counter("step"), .data_cursor = counter("data_cursor"),
                       .seed = uint64_t(std::stoull(meta.at("seed").get<std::string>()))};
}

std::optional<int64_t> latest_checkpoint(const std::string& out_dir) {
  std::ifstream in(out_dir + "/latest");
  if (!in) return std::nullopt;
  int64_t step = -1;
  if (!(in >> step) || step < 0) fail("{}/latest: not a step number", out_dir);
  return step;
}

void set_latest_checkpoint(const std::string& out_dir, int64_t step) {
  write_file_atomic(out_dir + "/latest", fmt::format("{}\n", step));
}

void prune_checkpoints(const std::string& out_dir, int64_t keep) {
  std::map<int64_t, std::vector<fs::path>> by_step;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(out_dir, ec)) {
    const std::string n = e.path().filename().string();
    long long step = 0;
    char ext[16] = {};
    if (std::sscanf(n.c_str(), "checkpoint-%lld.%15s", &step, ext) != 2) continue;
    if (std::strcmp(ext, "state") == 0 || std::strcmp(ext, "gguf") == 0)
      by_step[step].push_back(e.path());
    else if (n.ends_with(".tmp"))  // left by a run killed while writing
      fs::remove(e.path(), ec);
  }
  const auto latest = latest_checkpoint(out_dir);
  int64_t n = int64_t(by_step.size());
  for (auto& [step, files] : by_step) {
    if (n-- <= keep) break;
    if (latest && step == *latest) continue;
    for (const fs::path& f : files) fs::remove(f, ec);
  }
}

}  // namespace whale::train
