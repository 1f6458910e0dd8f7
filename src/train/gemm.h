// The training engine's dense products: C (+)= A · B for any strides of A and B, on the global
// thread pool, in T = float (training) or double (the finite-difference tests). One register
// tile (6 rows × 16 floats of C, AVX2 FMAs on a native build) serves every product; A and B are
// packed into panels first where that pays (see gemm.cpp). The order of the multiply-adds into
// each C entry depends only on K (chunks of 256, summed from zero, then added to C), never on
// the packing, the threads or the block a caller hands over: every way of splitting a product
// gives the same bits.
#pragma once

#include <cstdint>

namespace whale::train {

// C[i][j] = (accumulate ? C[i][j] : 0) + Σ_k A(i,k) · B[k][j]   for i < M, j < N, k < K.
// A(i,k) = A[i*sa_i + k*sa_k] (any strides: A or Aᵀ), B rows ldb apart, C rows ldc apart.
// Threaded over tiles of C on the global pool (serial when called from inside a pool task).
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t sa_i, int64_t sa_k, const T* B,
          int64_t ldb, T* C, int64_t ldc, bool accumulate);

// The same with B(k, j) = B[k*sb_k + j*sb_j] (any strides: B or Bᵀ, e.g. Wᵀ in Y = X · Wᵀ).
template <typename T>
void gemm_strided(int64_t M, int64_t N, int64_t K, const T* A, int64_t sa_i, int64_t sa_k,
                  const T* B, int64_t sb_k, int64_t sb_j, T* C, int64_t ldc, bool accumulate);

}  // namespace whale::train
