// The training engine's dense products: C (+)= A · B for any strides of A and B, on the global
// thread pool, in T = float (training) or double (the finite-difference tests). One register
// tile (6 rows × 16 floats of C, AVX2 FMAs on a native build) serves every product; A and B are
// packed into panels first where that pays (see gemm.cpp). The order of the multiply-adds into
// each C entry depends only on K (chunks of 256, summed from zero, then added to C), never on
// the packing, the threads or the block a caller hands over: every way of splitting a product
// gives the same bits.
#pragma once

#include <cstdint>
#include <memory>

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

// B(k, j) = B[k*sb_k + j*sb_j] (k < K, j < N) packed once for many products against it: 16-column
// stripes (8 for double), each a contiguous K × 16 panel, zero columns past N. The head's
// weight is packed once per loss and multiplied by one block of token rows at a time.
template <typename T>
class PackedB {
 public:
  // Packs on the global pool (serially inside a pool task). Reuses the buffer of a previous pack.
  void pack(int64_t N, int64_t K, const T* B, int64_t sb_k, int64_t sb_j);
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  const T* data() const { return buf_.get(); }

 private:
  std::unique_ptr<T[]> buf_;  // not zero-filled: pack writes every entry
  size_t cap_ = 0;
  int64_t n_ = 0, k_ = 0;
};

// C[i][j] = (accumulate ? C[i][j] : 0) + Σ_k A(i,k) · B(k, j) for i < M against a packed B
// (N = B.n(), K = B.k()); threaded as gemm. Same bits as gemm on the unpacked B.
template <typename T>
void gemm_packed(int64_t M, const T* A, int64_t sa_i, int64_t sa_k, const PackedB<T>& B, T* C,
                 int64_t ldc, bool accumulate);

}  // namespace whale::train
