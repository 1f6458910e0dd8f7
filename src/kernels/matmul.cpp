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

// Scratch for the chunks of one parallel_for, owned by the calling thread: the pool's chunk k
// starts at k * grain, so it uses slot k. Sized before the workers start, so no worker ever
// allocates, and after the first call of a shape nothing is allocated at all (with any number
// of threads: which thread runs which chunk does not matter).
struct ChunkScratch {
  float* base;
  size_t per_chunk;
  int64_t grain;
  float* at(int64_t chunk_begin) const { return base + size_t(chunk_begin / grain) * per_chunk; }
};

ChunkScratch chunk_scratch(int64_t n, int64_t grain, size_t per_chunk) {
  thread_local std::vector<float> buf;
  const size_t chunks = size_t((n + grain - 1) / grain);
  return {scratch(buf, std::max<size_t>(1, chunks * per_chunk)), per_chunk, grain};
}

// Float weights (F8 with block scales, and any type the kernel sets do not cover): the
// scalar reference, one row dequantized at a time.
void matmul_generic(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y, int64_t ldy) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t grain = std::max<int64_t>(1, W.rows / (8 * pool.size()));
  const ChunkScratch cs = chunk_scratch(W.rows, grain, size_t(W.cols));
  pool.parallel_for(W.rows, grain, [&](int64_t r0, int64_t r1) {
    float* row = cs.at(r0);
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

namespace {

struct Product {
  const Matrix* W;
  float* Y;
  int64_t ldy;
};

// Products of several matrices with the same activations: each activation format needed is
// quantized once, and all matrices' row tiles go through one parallel region.
void run_products(const Product* prods, int n_prods, const float* X, int64_t n_tok, int64_t ldx) {
  constexpr int kMax = 4;
  WHALE_ASSERT(n_prods <= kMax);
  if (n_tok <= 0) return;
  const kern::KernelSet& ks = active_kernels();
  ThreadPool& pool = ThreadPool::global();
  const bool fast_mode = matmul_precision() == MatmulPrecision::Fast;

  kern::GemmArgs args[kMax];
  bool fast[kMax];
  int64_t tile_end[kMax];  // cumulative tile counts
  constexpr int64_t kTile = 8;  // rows per tile of the fast K-quant kernel (a multiple of every kernel's tile)
  int64_t n_tiles = 0;
  bool need_k = false, need_b = false;
  int64_t cols = -1;
  for (int i = 0; i < n_prods; ++i) {
    const Matrix& W = *prods[i].W;
    WHALE_ASSERT(ldx >= W.cols && prods[i].ldy >= W.rows);
    WHALE_ASSERT(cols < 0 || cols == W.cols);
    cols = W.cols;
    fast[i] = fast_mode && has_fast_path(W.dtype);
    need_k = need_k || (fast[i] && is_kquant(W.dtype));
    need_b = need_b || (fast[i] && !is_kquant(W.dtype));
    args[i] = kern::GemmArgs{.wtype = W.dtype,
                             .w = W.data,
                             .w_row_bytes = W.row_bytes,
                             .cols = W.cols,
                             .n_tok = n_tok,
                             .x = X,
                             .ldx = ldx,
                             .xq = nullptr,
                             .xq_stride = 0,
                             .y = prods[i].Y,
                             .ldy = prods[i].ldy};
    n_tiles += (W.rows + kTile - 1) / kTile;
    tile_end[i] = n_tiles;
  }
  if (need_k || need_b) {
    // Quantize every token once, into the calling thread's buffers (workers only read them).
    thread_local std::vector<kern::ActQ8K> buf_k;
    thread_local std::vector<kern::ActQ8B> buf_b;
    const int64_t nbk = cols / kern::kQK, nbb = cols / kern::kQ32;
    kern::ActQ8K* xk = need_k ? scratch(buf_k, size_t(nbk * n_tok)) : nullptr;
    kern::ActQ8B* xb = need_b ? scratch(buf_b, size_t(nbb * n_tok)) : nullptr;
    pool.parallel_for(n_tok, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        if (xk) kern::quantize_act_q8K(X + t * ldx, xk + t * nbk, cols);
        if (xb) kern::quantize_act_q8B(X + t * ldx, xb + t * nbb, cols);
      }
    });
    for (int i = 0; i < n_prods; ++i) {
      if (!fast[i]) continue;
      const bool k = is_kquant(args[i].wtype);
      args[i].xq = k ? reinterpret_cast<const uint8_t*>(xk) : reinterpret_cast<const uint8_t*>(xb);
      args[i].xq_stride = k ? size_t(nbk) * sizeof(kern::ActQ8K) : size_t(nbb) * sizeof(kern::ActQ8B);
    }
  }
  // Tiles of 8 rows; about 8 chunks per thread so uneven progress evens out.
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * pool.size()));
  // The exact path dequantizes (or converts) a tile of rows into scratch.
  bool need_scratch = false;
  for (int i = 0; i < n_prods; ++i) need_scratch = need_scratch || !fast[i];
  const ChunkScratch cs = chunk_scratch(need_scratch ? n_tiles : 0, grain, size_t(kern::kExactRows * cols));
  pool.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e) {
    int64_t first = 0;  // first tile of product i
    for (int i = 0; i < n_prods; ++i) {
      const int64_t lo = std::max(b, first), hi = std::min(e, tile_end[i]);
      if (lo < hi) {
        const int64_t rows = prods[i].W->rows;
        const int64_t r0 = (lo - first) * kTile, r1 = std::min(rows, (hi - first) * kTile);
        if (fast[i]) ks.gemm_fast(args[i], r0, r1);
        else ks.gemm_exact(args[i], r0, r1, need_scratch ? cs.at(b) : nullptr);
      }
      first = tile_end[i];
    }
  });
}

bool needs_generic(const Matrix& W) {
  return W.dtype == DType::F8_E4M3 || W.block_scale || size_t(W.dtype) >= size_t(DType::Count);
}

}  // namespace

void matmul(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y, int64_t ldy) {
  if (W.rows <= 0 || n_tok <= 0) return;
  if (needs_generic(W)) {
    matmul_generic(W, X, n_tok, ldx, Y, ldy);
    return;
  }
  const Product p{&W, Y, ldy};
  run_products(&p, 1, X, n_tok, ldx);
}

void matmul2(const Matrix& W1, float* Y1, int64_t ldy1, const Matrix& W2, float* Y2, int64_t ldy2,
             const float* X, int64_t n_tok, int64_t ldx) {
  if (W1.cols != W2.cols || needs_generic(W1) || needs_generic(W2) || W1.rows <= 0 || W2.rows <= 0) {
    matmul(W1, X, n_tok, ldx, Y1, ldy1);
    matmul(W2, X, n_tok, ldx, Y2, ldy2);
    return;
  }
  const Product p[2] = {{&W1, Y1, ldy1}, {&W2, Y2, ldy2}};
  run_products(p, 2, X, n_tok, ldx);
}

void matmul_transposed(const Matrix& W, const float* X, int64_t n_tok, int64_t ldx, float* Y,
                       int64_t ldy) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t grain = std::max<int64_t>(1, n_tok / pool.size());
  const ChunkScratch cs = chunk_scratch(n_tok, grain, size_t(W.cols));
  pool.parallel_for(n_tok, grain, [&](int64_t t0, int64_t t1) {
    float* row = cs.at(t0);
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
