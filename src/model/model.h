// The model interface: one forward over a batch of tokens at given positions, reading and
// writing a KvCache. Prefill (many tokens in one call) and decode (one token per call) run
// the same code and give the same logits.
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

  // tokens[i] sits at positions[i]; every position < positions[i] of this sequence must be in
  // `kv` already or earlier in this batch. logits: [n, V] when all_logits, else [1, V] for the
  // last token.
  virtual void forward(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                       KvCache& kv, float* logits, bool all_logits) = 0;

 protected:
  explicit Model(std::unique_ptr<ModelFiles> files) : files_(std::move(files)) {}
  // Checks tokens and positions against the vocabulary and the cache (throws whale::Error).
  void check_batch(std::span<const int32_t> tokens, std::span<const int32_t> positions,
                   const KvCache& kv) const;
  std::unique_ptr<ModelFiles> files_;
  std::vector<std::string> unused_;
};

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& opts = {});

// Architecture constructors (one file each).
std::unique_ptr<Model> make_deepseek2(std::unique_ptr<ModelFiles> files, const LoadOptions& opts);
std::unique_ptr<Model> make_dense(std::unique_ptr<ModelFiles> files, const LoadOptions& opts);

}  // namespace whale
