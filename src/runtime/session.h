// Session: one sequence's KV cache and the tokens it holds. prefill() makes the cache hold a
// new prompt, recomputing only what differs from the tokens already cached (a multi-turn chat
// re-sends the whole conversation; only the new turn is computed).
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace whale {

class Session {
 public:
  Session(Model& model, int64_t n_ctx, KvType kv_type = DType::F32);

  // Logits of the last prompt token; throws whale::Error if the prompt exceeds the context.
  const float* prefill(const std::vector<int32_t>& prompt);
  // Appends one token and returns its logits; throws when the context is full.
  const float* decode(int32_t token);
  void reset() { tokens_.clear(); }

  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t n_ctx() const { return kv_.n_ctx(); }
  int64_t n_vocab() const { return model_.config().n_vocab; }
  int64_t last_prefill_computed() const { return last_computed_; }  // tokens actually run

 private:
  Model& model_;
  KvCache kv_;
  std::vector<int32_t> tokens_;
  std::vector<float> logits_;
  std::vector<int32_t> pos_;
  int64_t last_computed_ = 0;
};

}  // namespace whale
