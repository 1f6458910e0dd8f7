// KV cache storage as the model sees it.
// deepseek2 caches the MLA latent [c_kv (c) ; k_rope (dr)] in `k` and nothing in `v`;
// dense models cache K and V of all KV heads. Rows are float32.
//
// KvBlocks is the one view the forward reads and writes: a sequence's cache is a list of
// blocks of `block_tokens` consecutive positions each (one block for a contiguous KvCache, one
// per page for the paged pool of the scheduler). Within a block, layer il's K rows start at
// k_base[block] + il * k_layer_stride, one row of k_width floats per position, so attention
// can walk the cache as contiguous runs of rows (pointer, count, row stride).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "model/config.h"

namespace whale {

// Row widths of one cached token per layer: {k_width, v_width}.
struct KvWidths {
  int64_t k = 0, v = 0;
};
KvWidths kv_widths(const ModelConfig& cfg);

struct KvBlocks {
  int64_t block_tokens = 0;                   // positions per block
  int64_t k_width = 0, v_width = 0;           // floats per row
  int64_t k_layer_stride = 0, v_layer_stride = 0;  // floats between layers inside a block
  std::span<float* const> k_base, v_base;     // per block (v_base empty when v_width == 0)

  int64_t capacity() const { return block_tokens * int64_t(k_base.size()); }
  int64_t n_blocks(int64_t len) const { return (len + block_tokens - 1) / block_tokens; }
  // First row of block b of layer il, and how many of its rows lie below `len` positions.
  const float* k_rows(int64_t il, int64_t b) const { return k_base[size_t(b)] + il * k_layer_stride; }
  const float* v_rows(int64_t il, int64_t b) const { return v_base[size_t(b)] + il * v_layer_stride; }
  int64_t rows_in(int64_t b, int64_t len) const { return std::min(block_tokens, len - b * block_tokens); }
  float* k(int64_t il, int64_t pos) const {
    return k_base[size_t(pos / block_tokens)] + il * k_layer_stride + (pos % block_tokens) * k_width;
  }
  float* v(int64_t il, int64_t pos) const {
    return v_base[size_t(pos / block_tokens)] + il * v_layer_stride + (pos % block_tokens) * v_width;
  }
};

// Contiguous cache for one sequence: per layer, n_ctx rows (one block of n_ctx positions).
class KvCache {
 public:
  KvCache(const ModelConfig& cfg, int64_t n_ctx);
  KvCache(const KvCache&) = delete;  // blocks() points into this object
  KvCache& operator=(const KvCache&) = delete;

  int64_t n_ctx() const { return n_ctx_; }
  int64_t k_width() const { return k_width_; }
  int64_t v_width() const { return v_width_; }
  float* k(int64_t layer, int64_t pos) { return &k_[size_t((layer * n_ctx_ + pos) * k_width_)]; }
  float* v(int64_t layer, int64_t pos) { return &v_[size_t((layer * n_ctx_ + pos) * v_width_)]; }
  uint64_t bytes_per_token() const {
    return uint64_t(n_layer_) * uint64_t(k_width_ + v_width_) * sizeof(float);
  }
  KvBlocks blocks() const;

 private:
  int64_t n_ctx_, n_layer_, k_width_, v_width_;
  std::vector<float> k_, v_;
  float* k_ptr_[1] = {nullptr};
  float* v_ptr_[1] = {nullptr};
};

}  // namespace whale
