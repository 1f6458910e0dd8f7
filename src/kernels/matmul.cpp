#include "kernels/matmul.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/ops.h"
#include "kernels/quants.h"

namespace whale {

Matrix Matrix::row_slice(int64_t first, int64_t n) const {
  WHALE_ASSERT(first >= 0 && n >= 0 && first + n <= rows);
  Matrix m = *this;
  m.rows = n;
  m.data = data + uint64_t(first) * row_bytes;
  m.row0 = row0 + first;
  return m;
}

void Matrix::dequantize_row(int64_t i, float* out) const {
  WHALE_ASSERT(i >= 0 && i < rows);
  whale::dequantize_row(dtype, data + uint64_t(i) * row_bytes, out, cols);
  if (block_scale) {
    const float* s = block_scale + ((row0 + i) / kScaleBlock) * scale_cols;
    for (int64_t j = 0; j < cols; ++j) out[j] *= s[j / kScaleBlock];
  }
}

namespace {
float* scratch_row(int64_t n) {
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  return buf.data();
}
}  // namespace

void matmul(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y, int64_t ldy) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t grain = std::max<int64_t>(1, W.rows / (8 * pool.size()));
  pool.parallel_for(W.rows, grain, [&](int64_t r0, int64_t r1) {
    float* row = scratch_row(W.cols);
    for (int64_t r = r0; r < r1; ++r) {
      W.dequantize_row(r, row);
      for (int64_t t = 0; t < n_tok; ++t) Y[t * ldy + r] = dot_f32(row, X + t * ldx, W.cols);
    }
  });
}

void matmul_transposed(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y,
                       int64_t ldy) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t grain = std::max<int64_t>(1, n_tok / pool.size());
  pool.parallel_for(n_tok, grain, [&](int64_t t0, int64_t t1) {
    float* row = scratch_row(W.cols);
    for (int64_t t = t0; t < t1; ++t) std::fill(Y + t * ldy, Y + t * ldy + W.cols, 0.0f);
    for (int64_t r = 0; r < W.rows; ++r) {
      W.dequantize_row(r, row);
      for (int64_t t = t0; t < t1; ++t) {
        const float x = X[t * ldx + r];
        float* y = Y + t * ldy;
        for (int64_t j = 0; j < W.cols; ++j) y[j] += x * row[j];
      }
    }
  });
}

}  // namespace whale
