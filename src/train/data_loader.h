// Training data: a flat stream of token ids and a deterministic batch order over it.
//
// On disk (written by `whale corpus`): DIR/tokens.bin, little-endian uint32 token ids, the
// tokenised documents back to back (each starts with BOS, so windows may span documents, as
// in DeepSeek's pre-training).
//
// Batches: the stream is cut into windows of T + 1 tokens starting at multiples of T (inputs
// are the first T, targets the last T). Each epoch visits every window once, in the order of
// a permutation drawn from (seed, epoch); a batch is the next B windows. The whole sampler
// state is one number, the count of windows consumed (the data cursor), so a checkpoint
// restores the exact batch sequence.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "train/train_model.h"

namespace whale::train {

class TokenDataset {
 public:
  explicit TokenDataset(std::vector<int32_t> tokens) : tokens_(std::move(tokens)) {}
  // DIR/tokens.bin; ids must be < n_vocab (checked here, once, rather than in the model).
  static TokenDataset load(const std::string& dir, int64_t n_vocab);
  static void save(const std::string& dir, const std::vector<int32_t>& tokens);
  const std::vector<int32_t>& tokens() const { return tokens_; }

 private:
  std::vector<int32_t> tokens_;
};

class BatchSampler {
 public:
  BatchSampler(const TokenDataset& data, int64_t batch, int64_t seq, uint64_t seed);
  Batch next();
  int64_t cursor() const { return cursor_; }
  void seek(int64_t cursor) { cursor_ = cursor; }
  int64_t windows_per_epoch() const { return n_windows_; }

 private:
  void ensure_epoch(int64_t epoch);
  const TokenDataset& data_;
  int64_t B_, T_, n_windows_;
  uint64_t seed_;
  int64_t cursor_ = 0, epoch_ = -1;
  std::vector<int64_t> order_;  // window indices of epoch_
};

uint64_t splitmix64(uint64_t& state);

}  // namespace whale::train
