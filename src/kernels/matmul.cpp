#include "kernels/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "kernels/ops.h"
#include "kernels/qkernels.h"
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

// ---- precision ------------------------------------------------------------------------

const char* precision_name(MatmulPrecision p) { return p == MatmulPrecision::Exact ? "exact" : "fast"; }

std::optional<MatmulPrecision> precision_from_name(std::string_view s) {
  if (s == "exact") return MatmulPrecision::Exact;
  if (s == "fast") return MatmulPrecision::Fast;
  return std::nullopt;
}

namespace {

std::atomic<int>& precision_store() {
  static std::atomic<int> p{[] {
    const char* env = std::getenv("WHALE_MATMUL");
    if (!env || !*env) return int(MatmulPrecision::Fast);
    const auto p = precision_from_name(env);
    if (!p) {
      std::fprintf(stderr, "whale: warning: WHALE_MATMUL=%s is not exact or fast; using fast\n", env);
      return int(MatmulPrecision::Fast);
    }
    return int(*p);
  }()};
  return p;
}

const kern::KernelSet& active_kernels() {
  switch (isa_level()) {
    case IsaLevel::Avx512: return kern::kernels_avx512();
    case IsaLevel::Avx2: return kern::kernels_avx2();
    case IsaLevel::Portable: break;
  }
  return kern::kernels_portable();
}

bool has_fast_path(DType t) {
  return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K || t == DType::Q8_0 ||
         t == DType::Q4_0;
}

bool is_kquant(DType t) { return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K; }

// Grow-only per-thread scratch: allocates on the first calls only.
template <class T>
T* scratch(std::vector<T>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

float* scratch_floats(size_t n) {
  thread_local std::vector<float> buf;
  return scratch(buf, n);
}

// Float weights (F8 with block scales, and any type the kernel sets do not cover): the
// scalar reference, one row dequantized at a time.
void matmul_generic(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y, int64_t ldy) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t grain = std::max<int64_t>(1, W.rows / (8 * pool.size()));
  pool.parallel_for(W.rows, grain, [&](int64_t r0, int64_t r1) {
    float* row = scratch_floats(size_t(W.cols));
    for (int64_t r = r0; r < r1; ++r) {
      W.dequantize_row(r, row);
      for (int64_t t = 0; t < n_tok; ++t) Y[t * ldy + r] = dot_f32(row, X + t * ldx, W.cols);
    }
  });
}

}  // namespace

MatmulPrecision matmul_precision() { return MatmulPrecision(precision_store().load(std::memory_order_relaxed)); }

void set_matmul_precision(MatmulPrecision p) { precision_store().store(int(p), std::memory_order_relaxed); }

// ---- products -------------------------------------------------------------------------

void matmul(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y, int64_t ldy) {
  if (W.rows <= 0 || n_tok <= 0) return;
  WHALE_ASSERT(ldx >= W.cols && ldy >= W.rows);
  const DType t = W.dtype;
  if (t == DType::F8_E4M3 || W.block_scale || size_t(t) >= size_t(DType::Count)) {
    matmul_generic(W, X, n_tok, ldx, Y, ldy);
    return;
  }
  const kern::KernelSet& ks = active_kernels();
  kern::GemmArgs a{.wtype = t,
                   .w = W.data,
                   .w_row_bytes = W.row_bytes,
                   .cols = W.cols,
                   .n_tok = n_tok,
                   .x = X,
                   .ldx = ldx,
                   .xq = nullptr,
                   .xq_stride = 0,
                   .y = Y,
                   .ldy = ldy};
  ThreadPool& pool = ThreadPool::global();
  const bool fast = matmul_precision() == MatmulPrecision::Fast && has_fast_path(t);
  if (fast) {
    // Quantize every token once, on the calling thread's buffer (workers only read it).
    thread_local std::vector<kern::ActQ8K> buf_k;
    thread_local std::vector<kern::ActQ8B> buf_b;
    const bool k = is_kquant(t);
    const int64_t nb = W.cols / (k ? kern::kQK : kern::kQ32);
    const size_t stride = size_t(nb) * (k ? sizeof(kern::ActQ8K) : sizeof(kern::ActQ8B));
    uint8_t* xq = k ? reinterpret_cast<uint8_t*>(scratch(buf_k, size_t(nb * n_tok)))
                    : reinterpret_cast<uint8_t*>(scratch(buf_b, size_t(nb * n_tok)));
    pool.parallel_for(n_tok, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t i = t0; i < t1; ++i) {
        if (k) kern::quantize_act_q8K(X + i * ldx, reinterpret_cast<kern::ActQ8K*>(xq + i * stride), W.cols);
        else kern::quantize_act_q8B(X + i * ldx, reinterpret_cast<kern::ActQ8B*>(xq + i * stride), W.cols);
      }
    });
    a.xq = xq;
    a.xq_stride = stride;
  }
  // Tiles of 4 rows; about 8 chunks per thread so uneven progress evens out.
  constexpr int64_t kTile = 4;
  const int64_t n_tiles = (W.rows + kTile - 1) / kTile;
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * pool.size()));
  pool.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e) {
    const int64_t r0 = b * kTile, r1 = std::min(W.rows, e * kTile);
    if (fast) ks.gemm_fast(a, r0, r1);
    else ks.gemm_exact(a, r0, r1, scratch_floats(size_t(kern::kExactRows * W.cols)));
  });
}

void matmul_transposed(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y,
                       int64_t ldy) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t grain = std::max<int64_t>(1, n_tok / pool.size());
  pool.parallel_for(n_tok, grain, [&](int64_t t0, int64_t t1) {
    float* row = scratch_floats(size_t(W.cols));
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
