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
  switch (t) {
    case DType::Q4_K: case DType::Q5_K: case DType::Q6_K:
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: return true;
    default: return false;
  }
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

// Products of any shapes in one parallel region: each activation matrix is quantized once per
// format it needs (consecutive jobs with the same X, n_tok, ldx and cols share it, as the
// FFN's gate and up projections do), then every job's row tiles go through one parallel_for, so
// the experts of an MoE layer cost one region rather than one or two each.
void run_jobs(const MatmulJob* jobs, int64_t n_jobs) {
  if (n_jobs <= 0) return;
  const kern::KernelSet& ks = active_kernels();
  ThreadPool& pool = ThreadPool::global();
  const bool fast_mode = matmul_precision() == MatmulPrecision::Fast;
  constexpr int64_t kTile = 8;  // rows per tile of the fast K-quant kernel (a multiple of every kernel's tile)

  // Per job: kernel arguments, path, cumulative tile count, which job's quantized activations
  // it reads (itself, or the job before it when that has the same X) and, for a job that owns
  // its X, where its quantized activations go. Grow-only, per thread.
  constexpr size_t kNone = SIZE_MAX;
  struct JobPlan {
    kern::GemmArgs args;
    int64_t tile_end;    // tiles of jobs 0 .. this one
    int64_t item_end;    // tokens to quantize of jobs 0 .. this one
    int64_t owner;       // the job whose quantized activations this one reads
    size_t k_at, b_at;   // offset into the ActQ8K / ActQ8B buffers, or kNone
    bool fast;
  };
  thread_local std::vector<JobPlan> plans;
  if (plans.size() < size_t(n_jobs)) plans.resize(size_t(n_jobs));
  // A plain pointer for the lambdas below: inside a worker, the name of a thread_local refers
  // to the worker's own (empty) copy.
  JobPlan* const P = plans.data();
  int64_t n_tiles = 0, max_cols = 0;
  size_t nk = 0, nb = 0;  // ActQ8K / ActQ8B blocks needed
  bool need_scratch = false;
  for (int64_t i = 0; i < n_jobs; ++i) {
    const MatmulJob& j = jobs[i];
    const Matrix& W = *j.W;
    WHALE_ASSERT(j.ldx >= W.cols && j.ldy >= W.rows && j.n_tok > 0 && W.rows > 0);
    JobPlan& p = P[i];
    p.fast = fast_mode && has_fast_path(W.dtype);
    need_scratch = need_scratch || !p.fast;
    max_cols = std::max(max_cols, W.cols);
    p.args = kern::GemmArgs{.wtype = W.dtype, .w = W.data, .w_row_bytes = W.row_bytes, .cols = W.cols,
                            .n_tok = j.n_tok, .x = j.X, .ldx = j.ldx, .xq = nullptr, .xq_stride = 0,
                            .y = j.Y, .ldy = j.ldy};
    n_tiles += (W.rows + kTile - 1) / kTile;
    p.tile_end = n_tiles;
    const MatmulJob* prev = i > 0 ? &jobs[i - 1] : nullptr;  // sharing jobs come in a row (gate, up)
    const bool shares = prev && prev->X == j.X && prev->n_tok == j.n_tok && prev->ldx == j.ldx && prev->W->cols == W.cols;
    p.owner = shares ? P[i - 1].owner : i;
    p.k_at = p.b_at = kNone;
  }
  // Offsets of the quantized activations: a job that owns its X reserves the formats that it
  // and the jobs sharing its X need.
  for (int64_t i = 0; i < n_jobs; ++i) {
    if (!P[i].fast) continue;
    JobPlan& o = P[P[i].owner];
    const int64_t cols = o.args.cols, n = o.args.n_tok;
    if (is_kquant(P[i].args.wtype)) {
      if (o.k_at == kNone) o.k_at = nk, nk += size_t(n * (cols / kern::kQK));
    } else if (o.b_at == kNone) {
      o.b_at = nb, nb += size_t(n * (cols / kern::kQ32));
    }
  }
  if (nk + nb > 0) {
    // Quantize into the calling thread's buffers (workers only read them): one item per
    // (owning job, token).
    thread_local std::vector<kern::ActQ8K> buf_k;
    thread_local std::vector<kern::ActQ8B> buf_b;
    kern::ActQ8K* xk = scratch(buf_k, std::max<size_t>(nk, 1));
    kern::ActQ8B* xb = scratch(buf_b, std::max<size_t>(nb, 1));
    int64_t items = 0;
    for (int64_t i = 0; i < n_jobs; ++i) {
      const bool owns = P[i].k_at != kNone || P[i].b_at != kNone;
      items += owns ? P[i].args.n_tok : 0;
      P[i].item_end = items;
    }
    pool.parallel_for(items, 1, [&](int64_t b, int64_t e) {
      // the job of item b
      int64_t i = std::upper_bound(P, P + n_jobs, b, [](int64_t v, const JobPlan& p) { return v < p.item_end; }) - P;
      for (int64_t it = b; it < e; ++it) {
        while (P[i].item_end <= it) ++i;
        const JobPlan& p = P[i];
        const int64_t t = it - (i > 0 ? P[i - 1].item_end : 0), cols = p.args.cols;
        const float* x = p.args.x + t * p.args.ldx;
        if (p.k_at != kNone) kern::quantize_act_q8K(x, xk + p.k_at + t * (cols / kern::kQK), cols);
        if (p.b_at != kNone) kern::quantize_act_q8B(x, xb + p.b_at + t * (cols / kern::kQ32), cols);
      }
    });
    for (int64_t i = 0; i < n_jobs; ++i) {
      JobPlan& p = P[i];
      if (!p.fast) continue;
      const JobPlan& o = P[p.owner];
      const int64_t cols = p.args.cols;
      if (is_kquant(p.args.wtype)) {
        p.args.xq = reinterpret_cast<const uint8_t*>(xk + o.k_at);
        p.args.xq_stride = size_t(cols / kern::kQK) * sizeof(kern::ActQ8K);
      } else {
        p.args.xq = reinterpret_cast<const uint8_t*>(xb + o.b_at);
        p.args.xq_stride = size_t(cols / kern::kQ32) * sizeof(kern::ActQ8B);
      }
    }
  }
  // Tiles of 8 rows; about 8 chunks per thread so uneven progress evens out.
  const int64_t grain = std::max<int64_t>(1, n_tiles / (8 * pool.size()));
  // The exact path dequantizes (or converts) a tile of rows into scratch.
  const ChunkScratch cs = chunk_scratch(need_scratch ? n_tiles : 0, grain, size_t(kern::kExactRows * max_cols));
  pool.parallel_for(n_tiles, grain, [&](int64_t b, int64_t e) {
    // the first job whose tiles reach past b
    int64_t i = std::upper_bound(P, P + n_jobs, b, [](int64_t v, const JobPlan& p) { return v < p.tile_end; }) - P;
    for (; i < n_jobs; ++i) {
      const JobPlan& p = P[i];
      const int64_t first = i > 0 ? P[i - 1].tile_end : 0;
      if (first >= e) break;
      const int64_t lo = std::max(b, first), hi = std::min(e, p.tile_end);
      const int64_t r0 = (lo - first) * kTile, r1 = std::min(jobs[i].W->rows, (hi - first) * kTile);
      if (p.fast) ks.gemm_fast(p.args, r0, r1);
      else ks.gemm_exact(p.args, r0, r1, need_scratch ? cs.at(b) : nullptr);
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
  const MatmulJob j{&W, X, n_tok, ldx, Y, ldy};
  run_jobs(&j, 1);
}

void matmul2(const Matrix& W1, float* Y1, int64_t ldy1, const Matrix& W2, float* Y2, int64_t ldy2,
             const float* X, int64_t n_tok, int64_t ldx) {
  const MatmulJob j[2] = {{&W1, X, n_tok, ldx, Y1, ldy1}, {&W2, X, n_tok, ldx, Y2, ldy2}};
  matmul_batch(j);
}

void matmul_batch(std::span<const MatmulJob> jobs) {
  // Jobs the shared region cannot take (F8 with block scales and other generic weights, empty
  // products) run on their own first; the rest are compacted into a per-thread list.
  thread_local std::vector<MatmulJob> batch;
  batch.clear();
  for (const MatmulJob& j : jobs) {
    if (j.W->rows <= 0 || j.n_tok <= 0) continue;
    if (needs_generic(*j.W)) matmul_generic(*j.W, j.X, j.n_tok, j.ldx, j.Y, j.ldy);
    else batch.push_back(j);
  }
  run_jobs(batch.data(), int64_t(batch.size()));
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
