// Matrix products of weights (any DType) with float32 activations, threaded over the
// global pool, dispatched at run time to the best kernels this CPU has (core/cpu_features.h;
// WHALE_ISA forces a lower level).
//
// Two precisions, chosen process-wide (set_matmul_precision, or WHALE_MATMUL=exact|fast):
//  - Exact: float32 activations; weights dequantized (a tile of rows at a time, once per
//    call) or converted on the fly, FMA dot products. Differs from the scalar reference by
//    float rounding only; what the fixture tests' 1e-4 needs.
//  - Fast (the default): for quantized weights (Q4_K/Q5_K/Q6_K, Q8_0/Q4_0/Q4_1/Q5_0/Q5_1)
//    the activations are quantized to 8 bits per token once per call, as llama.cpp does
//    (blocks of 256 with one scale for the K-quants, of 32 for the others), and multiplied in integer arithmetic. Float weights
//    (F32/F16/BF16/F8) always take the exact path.
// Decode (one token) streams every weight row once over all threads; with several tokens each
// weight block is decoded once per tile of 8 rows and every token of the call sweeps over it.
// No heap allocation per call after warm-up: scratch is owned by the calling thread and sized
// before the workers start, so this holds with any number of threads.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "kernels/matrix.h"

namespace whale {

// Y[t][r] = sum_j W[r][j] * X[t][j] for t < n_tok, r < W.rows.
// X rows are ldx floats apart (>= W.cols), Y rows ldy floats apart (>= W.rows).
void matmul(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y, int64_t ldy);

// Y1 = W1 X and Y2 = W2 X in one pass (the FFN's gate and up projections): the activations
// are quantized once and both matrices share one parallel region. Same result as two matmul
// calls; falls back to them when the shapes or types do not allow sharing.
void matmul2(const Matrix& W1, float* Y1, int64_t ldy1, const Matrix& W2, float* Y2, int64_t ldy2,
             const float* X, int64_t n_tok, int64_t ldx);

// One product of a batch: Y = W X over n_tok tokens (X rows ldx floats apart, Y rows ldy).
struct MatmulJob {
  const Matrix* W;
  const float* X;
  int64_t n_tok, ldx;
  float* Y;
  int64_t ldy;
};

// Every job's product, in one parallel region where the types allow (the experts of an MoE
// layer: one region instead of one per expert). Consecutive jobs with the same X, n_tok and ldx
// share its quantized activations. Each result equals a matmul call's, bit for bit. No allocation after
// the first calls of a given size.
void matmul_batch(std::span<const MatmulJob> jobs);

// Y[t][j] = sum_r X[t][r] * W[r][j] for t < n_tok, j < W.cols (the product with Wᵀ).
void matmul_transposed(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y,
                       int64_t ldy);

enum class MatmulPrecision { Exact, Fast };
const char* precision_name(MatmulPrecision p);
std::optional<MatmulPrecision> precision_from_name(std::string_view s);
// The current precision (first call reads WHALE_MATMUL; default Fast).
MatmulPrecision matmul_precision();
void set_matmul_precision(MatmulPrecision p);

}  // namespace whale
