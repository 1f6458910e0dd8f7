// Token stream and batch order: see data_loader.h.
#include "train/data_loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include <bit>

namespace whale::train {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

TokenDataset TokenDataset::load(const std::string& dir, int64_t n_vocab) {
  const std::string path = dir + "/tokens.bin";
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("{}: cannot open (the --data folder needs tokens.bin; see `whale corpus`)", path);
  const auto bytes = int64_t(in.tellg());
  if (bytes % 4 != 0) fail("{}: size {} is not a multiple of 4 (uint32 token ids)", path, bytes);
  std::vector<uint32_t> raw(size_t(bytes / 4));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(raw.data()), bytes);
  if (!in) fail("{}: read error", path);
  std::vector<int32_t> tokens(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] >= uint64_t(n_vocab))
      fail("{}: token {} at position {} is outside the model's vocabulary ({})", path, raw[i], i, n_vocab);
    tokens[i] = int32_t(raw[i]);
  }
  return TokenDataset(std::move(tokens));
}

void TokenDataset::save(const std::string& dir, const std::vector<int32_t>& tokens) {
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/tokens.bin", tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot create", tmp);
    static_assert(std::endian::native == std::endian::little);
    out.write(reinterpret_cast<const char*>(tokens.data()), std::streamsize(tokens.size() * 4));
    if (!out) fail("{}: write error", tmp);
  }
  std::filesystem::rename(tmp, path);
}

BatchSampler::BatchSampler(const TokenDataset& data, int64_t batch, int64_t seq, uint64_t seed)
    : data_(data), B_(batch), T_(seq), seed_(seed) {
  if (B_ < 1 || T_ < 1) fail("batch size and sequence length must be positive ({} × {})", B_, T_);
  const int64_t n = int64_t(data.tokens().size());
  n_windows_ = n > T_ ? (n - 1) / T_ : 0;
  if (n_windows_ < 1)
    fail("the training data has {} tokens: fewer than one window of {} + 1", n, T_);
}

void BatchSampler::ensure_epoch(int64_t epoch) {
  if (epoch == epoch_) return;
  order_.resize(size_t(n_windows_));
  for (int64_t i = 0; i < n_windows_; ++i) order_[size_t(i)] = i;
  uint64_t s = seed_ ^ (0x5851F42D4C957F2Dull * uint64_t(epoch + 1));
  for (int64_t i = n_windows_ - 1; i > 0; --i) {  // Fisher-Yates
    const int64_t j = int64_t(splitmix64(s) % uint64_t(i + 1));
    std::swap(order_[size_t(i)], order_[size_t(j)]);
  }
  epoch_ = epoch;
}

Batch BatchSampler::next() {
  Batch b;
  b.B = B_, b.T = T_;
  b.tokens.resize(size_t(B_ * T_));
  b.targets.resize(size_t(B_ * T_));
  const int32_t* tok = data_.tokens().data();
  for (int64_t r = 0; r < B_; ++r, ++cursor_) {
    ensure_epoch(cursor_ / n_windows_);
    const int64_t start = order_[size_t(cursor_ % n_windows_)] * T_;
    std::memcpy(&b.tokens[size_t(r * T_)], tok + start, size_t(T_) * 4);
    std::memcpy(&b.targets[size_t(r * T_)], tok + start + 1, size_t(T_) * 4);
  }
  return b;
}

}  // namespace whale::train
