// The model interface: one forward over a batch of tokens at given positions, reading and
// writing a KV cache. Prefill (many tokens in one call) and decode (one token per call) run
// the same code and give the same logits. forward_batch runs several sequences at once (the
// scheduler's continuous batching): every linear layer runs once over all their tokens, each
// token attends only to its own sequence's cache; each row's result does not depend on what
// else is in the batch.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace whale {

// One sequence of a batched forward. tokens[i] sits at positions[i]; every position <
// positions[i] of this sequence must be in `kv` already or earlier in its tokens.
struct SeqBatch {
  std::span<const int32_t> tokens, positions;
  KvBlocks kv;
  float* logits = nullptr;  // [n, V] when all_logits, else [1, V] (last token); null: none
  bool all_logits = false;
};

struct LoadOptions {
  bool naive_mla = false;  // deepseek2: expand K/V per head (test oracle) instead of absorbing
  // deepseek2: batches of at least this many tokens (long prefills) expand K/V per head with the
  // fast attention kernel instead of absorbing (cheaper for many queries; chosen by measurement).
  int64_t mla_expanded_min = int64_t(1) << 62;
};

class Model {
 public:
  virtual ~Model() = default;
  const ModelConfig& config() const { return files_->config(); }
  const ModelFiles& files() const { return *files_; }
  // Tensors present in the files that the forward does not use.
  const std::vector<std::string>& unused_tensors() const { return unused_; }

  // Not thread-safe: one forward at a time per model (the scratch buffers are members).
  virtual void forward_batch(std::span<const SeqBatch> seqs) = 0;

  // One sequence: tokens[i] sits at positions[i]; every position < positions[i] must be in
  // `kv` already or earlier in this batch. logits: [n, V] when all_logits, else [1, V] for the
  // last token.
  void forward(std::span<const int32_t> tokens, std::span<const int32_t> positions, KvCache& kv,
               float* logits, bool all_logits) {
    const SeqBatch s{.tokens = tokens, .positions = positions, .kv = kv.blocks(), .logits = logits,
                     .all_logits = all_logits};
    forward_batch(std::span(&s, 1));
  }

 protected:
  explicit Model(std::unique_ptr<ModelFiles> files) : files_(std::move(files)) {}
  // Checks every sequence's tokens and positions against the vocabulary and its cache
  // (throws whale::Error); returns the total token count.
  int64_t check_batch(std::span<const SeqBatch> seqs) const;
  // The batch as one run of tokens: position and sequence index of every token.
  struct FlatBatch {
    std::vector<int32_t> pos, seq;
    std::vector<int64_t> offset;  // first token of each sequence (size seqs + 1)
    int64_t max_pos = 0;
  };
  static void flatten(std::span<const SeqBatch> seqs, FlatBatch& out);
  // Final RMSNorm + lm_head over the rows whose logits the sequences ask for, written to each
  // sequence's logits. x: [n, D] hidden states of the flattened batch; xn, tmp: scratch.
  void batch_logits(std::span<const SeqBatch> seqs, const FlatBatch& fb, const float* x,
                    const std::vector<float>& norm_w, const Matrix& output, std::vector<float>& xn,
                    std::vector<float>& tmp) const;
  std::unique_ptr<ModelFiles> files_;
  std::vector<std::string> unused_;
};

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts = {});

// Architecture constructors (one file each).
std::unique_ptr<Model> make_deepseek2(std::unique_ptr<ModelFiles> files, const LoadOptions& opts);
std::unique_ptr<Model> make_dense(std::unique_ptr<ModelFiles> files, const LoadOptions& opts);

}  // namespace whale
