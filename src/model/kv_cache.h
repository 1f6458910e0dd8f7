// KV cache storage as the model sees it.
// deepseek2 caches the MLA latent [c_kv (c) ; k_rope (dr)] in `k` and nothing in `v`;
// dense models cache K and V of all KV heads. Rows are float32 or float16 (KvType; f16 halves
// the bytes per token and the reads of attention at depth, as llama.cpp's default f16 cache).
// Writers and readers outside attention go through store_*/load_* (conversion in one place);
// attention reads the rows in place as KvBlock runs of the cache's element type.
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

#include <string>

#include "core/dtype.h"
#include "model/config.h"

namespace whale {

// Row widths of one cached token per layer: {k_width, v_width}.
struct KvWidths {
  int64_t k = 0, v = 0;
};
KvWidths kv_widths(const ModelConfig& cfg);

// Element type of the cached rows: DType::F32 or DType::F16.
using KvType = DType;
// "f32" / "f16" (llama.cpp's -ctk names); throws whale::Error otherwise.
KvType parse_kv_type(const std::string& name);
inline int64_t kv_elem_bytes(KvType t) { return t == DType::F16 ? 2 : 4; }

struct KvBlocks {
  int64_t block_tokens = 0;                   // positions per block
  int64_t k_width = 0, v_width = 0;           // elements per row
  int64_t k_layer_stride = 0, v_layer_stride = 0;  // elements between layers inside a block
  std::span<void* const> k_base, v_base;      // per block (v_base empty when v_width == 0)
  KvType type = DType::F32;

  int64_t capacity() const { return block_tokens * int64_t(k_base.size()); }
  int64_t n_blocks(int64_t len) const { return (len + block_tokens - 1) / block_tokens; }
  // First row of block b of layer il, and how many of its rows lie below `len` positions.
  const void* k_rows(int64_t il, int64_t b) const { return at(k_base[size_t(b)], il * k_layer_stride); }
  const void* v_rows(int64_t il, int64_t b) const { return at(v_base[size_t(b)], il * v_layer_stride); }
  int64_t rows_in(int64_t b, int64_t len) const { return std::min(block_tokens, len - b * block_tokens); }
  void* k(int64_t il, int64_t pos) const {
    return at(k_base[size_t(pos / block_tokens)], il * k_layer_stride + (pos % block_tokens) * k_width);
  }
  void* v(int64_t il, int64_t pos) const {
    return at(v_base[size_t(pos / block_tokens)], il * v_layer_stride + (pos % block_tokens) * v_width);
  }
  // The row of a position from / to float32 (k_width / v_width floats).
  void store_k(int64_t il, int64_t pos, const float* src) const { store(k(il, pos), src, k_width); }
  void store_v(int64_t il, int64_t pos, const float* src) const { store(v(il, pos), src, v_width); }
  void load_k(int64_t il, int64_t pos, float* dst) const { load(k(il, pos), dst, k_width); }
  void load_v(int64_t il, int64_t pos, float* dst) const { load(v(il, pos), dst, v_width); }

 private:
  void* at(void* base, int64_t elems) const {
    return static_cast<char*>(base) + elems * kv_elem_bytes(type);
  }
  void store(void* row, const float* src, int64_t n) const;
  void load(const void* row, float* dst, int64_t n) const;
};

// Contiguous cache for one sequence: per layer, n_ctx rows (one block of n_ctx positions).
class KvCache {
 public:
  KvCache(const ModelConfig& cfg, int64_t n_ctx, KvType type = DType::F32);
  KvCache(const KvCache&) = delete;  // blocks() points into this object
  KvCache& operator=(const KvCache&) = delete;

  int64_t n_ctx() const { return n_ctx_; }
  int64_t k_width() const { return k_width_; }
  int64_t v_width() const { return v_width_; }
  KvType type() const { return type_; }
  uint64_t bytes_per_token() const {
    return uint64_t(n_layer_) * uint64_t(k_width_ + v_width_) * uint64_t(kv_elem_bytes(type_));
  }
  KvBlocks blocks() const;

 private:
  int64_t n_ctx_, n_layer_, k_width_, v_width_;
  KvType type_;
  std::vector<float> k_, v_;  // f16 rows use the first half of these (float-aligned storage)
  void* k_ptr_[1] = {nullptr};
  void* v_ptr_[1] = {nullptr};
};

}  // namespace whale
