// Matrix products of weights (any DType) with float32 activations, threaded over the
// global pool. This is the portable reference path: each weight row is dequantized once per
// call and reused for every token of the batch, so prefill reads weights once.
#pragma once

#include <cstdint>

#include "kernels/matrix.h"

namespace whale {

// Y[t][r] = sum_j W[r][j] * X[t][j] for t < n_tok, r < W.rows.
// X rows are ldx floats apart (>= W.cols), Y rows ldy floats apart (>= W.rows).
void matmul(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y, int64_t ldy);

// Y[t][j] = sum_r X[t][r] * W[r][j] for t < n_tok, j < W.cols (the product with Wᵀ).
void matmul_transposed(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y,
                       int64_t ldy);

}  // namespace whale
