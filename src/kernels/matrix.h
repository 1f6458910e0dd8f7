// Matrix: a 2-D weight [rows = out features, cols = in features] stored row-major in any
// DType, viewed in place (mmapped file) wherever possible. FP8 weights carry their
// DeepSeek block scales: W[i][j] = e4m3[i][j] * scale[(row0+i)/128][j/128].
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace whale {

struct Matrix {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  const uint8_t* data = nullptr;  // row i starts at data + i * row_bytes
  uint64_t row_bytes = 0;
  // FP8 block scales (F8_E4M3 only): float32 [ceil(total_rows/128), scale_cols].
  const float* block_scale = nullptr;
  int64_t scale_cols = 0;
  int64_t row0 = 0;  // index of row 0 in the full tensor, for the block-scale lookup

  static constexpr int64_t kScaleBlock = 128;

  bool empty() const { return data == nullptr; }
  // Rows [first, first + n) as their own matrix (expert slices, per-head blocks).
  Matrix row_slice(int64_t first, int64_t n) const;
  // Row i as float32.
  void dequantize_row(int64_t i, float* out) const;
};

}  // namespace whale
