// KV cache for one sequence: per layer, n_ctx rows of cached values in float32.
// deepseek2 caches the MLA latent [c_kv (c) ; k_rope (dr)] in `k` and nothing in `v`;
// dense models cache K and V of all KV heads.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace whale {

class KvCache {
 public:
  KvCache(const ModelConfig& cfg, int64_t n_ctx);

  int64_t n_ctx() const { return n_ctx_; }
  int64_t k_width() const { return k_width_; }
  int64_t v_width() const { return v_width_; }
  float* k(int64_t layer, int64_t pos) { return &k_[size_t((layer * n_ctx_ + pos) * k_width_)]; }
  float* v(int64_t layer, int64_t pos) { return &v_[size_t((layer * n_ctx_ + pos) * v_width_)]; }
  uint64_t bytes_per_token() const {
    return uint64_t(n_layer_) * uint64_t(k_width_ + v_width_) * sizeof(float);
  }

 private:
  int64_t n_ctx_, n_layer_, k_width_, v_width_;
  std::vector<float> k_, v_;
};

}  // namespace whale
