#include "train/ops_backward.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/threadpool.h"
#include "train/vec_math.h"

namespace whale::train {

namespace {

// Register tile of the gemm: kMR rows of C × two 32-byte vectors (16 floats / 8 doubles),
// accumulated over a K chunk in 2·kMR vector registers (GCC/Clang vector extensions; they
// lower to AVX2 FMAs with -march=native and to SSE pairs on a portable build). Each step
// broadcasts one A entry per row and multiplies it into the two B vectors of that k.
constexpr int64_t kMR = 6;
// Work item of a parallel product: kMB rows × kNR columns of C, K in chunks of kKC so the
// B panel chunk (kKC × kNR) stays in L1 while the row panels stream past it.
constexpr int64_t kMB = 60, kKC = 256;
// A work item packs its rows of A only when it covers at least this many column stripes.
constexpr int64_t kPackAStripes = 5;

template <typename T>
struct Simd {
  typedef T v __attribute__((vector_size(32)));
  static constexpr int64_t kLanes = int64_t(32 / sizeof(T));
  static v load(const T* p) {
    v r;
    __builtin_memcpy(&r, p, sizeof(r));
    return r;
  }
  static void store(T* p, v x) { __builtin_memcpy(p, &x, sizeof(x)); }
};

template <typename T>
constexpr int64_t kNR = 2 * Simd<T>::kLanes;

// out[kMR][kNR] = Σ_k A(i, k) · B(k, j) for a kMR-row × kNR-column tile, with
// A(i, k) = a[i*a_si + k*a_sk] (one broadcast per row and k) and B(k, ·) the kNR contiguous
// values at b + k*b_sk. Packed panels are a_si = 1, a_sk = kMR, b_sk = kNR; the parallel gemm
// also reads A and row-major B in place.
template <typename T>
inline void micro_tile(int64_t kc, const T* a, int64_t a_si, int64_t a_sk, const T* b,
                       int64_t b_sk, T* out) {
  using S = Simd<T>;
  using v = typename S::v;
  constexpr int64_t L = S::kLanes;
  v c0[kMR], c1[kMR];
  for (int64_t i = 0; i < kMR; ++i) c0[i] = c1[i] = v{};
  for (int64_t k = 0; k < kc; ++k) {
    const v b0 = S::load(b + k * b_sk), b1 = S::load(b + k * b_sk + L);
    const T* ak = a + k * a_sk;
    for (int64_t i = 0; i < kMR; ++i) {
      const T ai = ak[i * a_si];
      c0[i] += ai * b0;
      c1[i] += ai * b1;
    }
  }
  for (int64_t i = 0; i < kMR; ++i) {
    S::store(out + i * 2 * L, c0[i]);
    S::store(out + i * 2 * L + L, c1[i]);
  }
}

// Packs rows [i, i + kMR) of A over k in [k0, k0 + kc) (zero rows past M) into a kc × kMR
// panel, reading along A's contiguous direction.
template <typename T>
void pack_a_panel(int64_t i, int64_t M, int64_t k0, int64_t kc, const T* A, int64_t sa_i,
                  int64_t sa_k, T* ap) {
  const int64_t mr = std::min(kMR, M - i);
  if (sa_k == 1 && mr == kMR) {  // six rows at a time: each k step writes one panel row
    const T* a0 = A + i * sa_i + k0;
    const T *a1 = a0 + sa_i, *a2 = a1 + sa_i, *a3 = a2 + sa_i, *a4 = a3 + sa_i, *a5 = a4 + sa_i;
    for (int64_t k = 0; k < kc; ++k) {
      T* dst = ap + k * kMR;
      dst[0] = a0[k], dst[1] = a1[k], dst[2] = a2[k], dst[3] = a3[k], dst[4] = a4[k], dst[5] = a5[k];
    }
    return;
  }
  if (sa_k == 1) {
    for (int64_t ii = 0; ii < mr; ++ii) {
      const T* a = A + (i + ii) * sa_i + k0;
      for (int64_t k = 0; k < kc; ++k) ap[k * kMR + ii] = a[k];
    }
  } else {
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t ii = 0; ii < mr; ++ii) ap[k * kMR + ii] = A[(i + ii) * sa_i + (k0 + k) * sa_k];
  }
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t ii = mr; ii < kMR; ++ii) ap[k * kMR + ii] = T(0);
}

// Packs columns [j, j + kNR) of B over k in [k0, k0 + kc) (zero columns past N) into a
// kc × kNR panel, reading along B's contiguous direction.
template <typename T>
void pack_b_panel(int64_t j, int64_t N, int64_t k0, int64_t kc, const T* B, int64_t sb_k,
                  int64_t sb_j, T* bp) {
  constexpr int64_t NR = kNR<T>;
  const int64_t nr = std::min(NR, N - j);
  if (sb_j == 1) {
    for (int64_t k = 0; k < kc; ++k) {
      const T* b = B + (k0 + k) * sb_k + j;
      T* dst = bp + k * NR;
      if (nr == NR) {
        Simd<T>::store(dst, Simd<T>::load(b));
        Simd<T>::store(dst + Simd<T>::kLanes, Simd<T>::load(b + Simd<T>::kLanes));
        continue;
      }
      for (int64_t jj = 0; jj < nr; ++jj) dst[jj] = b[jj];
      for (int64_t jj = nr; jj < NR; ++jj) dst[jj] = T(0);
    }
    return;
  }
  // Bᵀ stored row-major (W in Y = X·Wᵀ): four rows of W at a time, so each k step writes
  // four neighbouring floats of the panel row instead of one.
  int64_t jj = 0;
  for (; jj + 4 <= nr; jj += 4) {
    const T* b0 = B + (j + jj) * sb_j + k0 * sb_k;
    const T *b1 = b0 + sb_j, *b2 = b1 + sb_j, *b3 = b2 + sb_j;
    for (int64_t k = 0; k < kc; ++k) {
      T* dst = bp + k * NR + jj;
      dst[0] = b0[k * sb_k], dst[1] = b1[k * sb_k], dst[2] = b2[k * sb_k], dst[3] = b3[k * sb_k];
    }
  }
  for (; jj < nr; ++jj) {
    const T* b = B + (j + jj) * sb_j + k0 * sb_k;
    for (int64_t k = 0; k < kc; ++k) bp[k * NR + jj] = b[k * sb_k];
  }
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t jj = nr; jj < NR; ++jj) bp[k * NR + jj] = T(0);
}

// Adds (or stores) a kMR × kNR register tile into C, clipped to mr × nr.
template <typename T>
inline void store_tile(const T* out, int64_t mr, int64_t nr, T* C, int64_t ldc, bool acc) {
  constexpr int64_t NR = kNR<T>;
  for (int64_t ii = 0; ii < mr; ++ii) {
    T* crow = C + ii * ldc;
    const T* o = out + ii * NR;
    if (acc)
      for (int64_t jj = 0; jj < nr; ++jj) crow[jj] += o[jj];
    else
      for (int64_t jj = 0; jj < nr; ++jj) crow[jj] = o[jj];
  }
}

// Small products, on the calling thread: per K chunk every row panel of A is packed once,
// then each column panel of B, and the register tile runs over the zero-padded panels.
template <typename T>
void gemm_small(int64_t M, int64_t N, int64_t K, const T* A, int64_t sa_i, int64_t sa_k, const T* B,
                int64_t sb_k, int64_t sb_j, T* C, int64_t ldc, bool accumulate) {
  constexpr int64_t NR = kNR<T>;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, T(0));
    return;
  }
  thread_local std::vector<T> apack, bpack;
  const int64_t n_iblk = (M + kMR - 1) / kMR;
  apack.resize(size_t(n_iblk * kMR * kKC));
  bpack.resize(size_t(kKC * NR));
  T out[kMR * NR];
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    for (int64_t ib = 0; ib < n_iblk; ++ib)
      pack_a_panel(ib * kMR, M, k0, kc, A, sa_i, sa_k, apack.data() + ib * kMR * kKC);
    for (int64_t j = 0; j < N; j += NR) {
      pack_b_panel(j, N, k0, kc, B, sb_k, sb_j, bpack.data());
      for (int64_t ib = 0; ib < n_iblk; ++ib) {
        const int64_t i = ib * kMR;
        micro_tile(kc, apack.data() + ib * kMR * kKC, 1, kMR, bpack.data(), NR, out);
        store_tile(out, std::min(kMR, M - i), std::min(NR, N - j), C + i * ldc + j, ldc,
                   accumulate || k0 > 0);
      }
    }
  }
}

// Grow-only scratch that is not zeroed (std::vector::resize would value-initialise and copy).
template <typename T>
T* scratch(std::unique_ptr<T[]>& buf, size_t& cap, size_t n) {
  if (n > cap) {
    buf.reset(new T[n]);
    cap = n;
  }
  return buf.get();
}

// Packs the row panels [ip0, ip1) of A over k in [k0, k0 + kc) into consecutive kc × kMR panels
// (kMR·kKC apart). A transposed A (sa_i == 1, e.g. dYᵀ in the weight gradient) is read one k
// row at a time, all panels together, so each cache line of A is touched once per chunk.
template <typename T>
void pack_a_group(int64_t ip0, int64_t ip1, int64_t M, int64_t k0, int64_t kc, const T* A,
                  int64_t sa_i, int64_t sa_k, T* ap) {
  if (sa_i != 1 || sa_k == 1) {
    for (int64_t ip = ip0; ip < ip1; ++ip)
      pack_a_panel(ip * kMR, M, k0, kc, A, sa_i, sa_k, ap + (ip - ip0) * kMR * kKC);
    return;
  }
  const int64_t i0 = ip0 * kMR, rows = std::min(M, ip1 * kMR) - i0;
  for (int64_t k = 0; k < kc; ++k) {
    const T* a = A + (k0 + k) * sa_k + i0;
    for (int64_t p = 0; p * kMR < rows; ++p) {
      T* dst = ap + p * kMR * kKC + k * kMR;
      const int64_t mr = std::min(kMR, rows - p * kMR);
      for (int64_t ii = 0; ii < mr; ++ii) dst[ii] = a[p * kMR + ii];
      for (int64_t ii = mr; ii < kMR; ++ii) dst[ii] = T(0);  // rows past M
    }
  }
}

// B(k, j) = B[k*sb_k + j*sb_j]: the packing reads any layout, so Wᵀ needs no copy.
//
// Large products (BLIS-like): B is packed once per product, in a parallel pass, into kNR-column
// stripes of contiguous k × kNR panels; the threads then take work items of up to kMB rows (a
// row group) × a block of stripes. Per K chunk an item packs its row group of A once (kMB ×
// kKC, ~60 KiB, L2) and runs the 6 × 16 register tile over it for every stripe of its block.
// Column stripes are split into blocks only as far as needed to give every thread several
// items (the experts' 256 × 128 shapes have 5 row groups), since each block re-packs the row
// group; not at all when the product runs on one thread (a nested call, e.g. one attention
// head's products inside the heads' parallel_for).
// Why pack both: read in place, a row-major B with a power-of-two row length (W in dX = dY·W,
// X in dW = dYᵀ·X) puts the 16-float rows of a panel 1 or 2 KiB apart, all in 4 or 8 of L1's
// 64 sets, so the panel never stays in L1; and a transposed A (dYᵀ) read in place walks
// down columns, one cache line (often one TLB page) per k, for every stripe again. Packing
// took the head's dX and dW from ~40 to ~70 GFLOP/s on one Zen 3 core. The arithmetic (the
// order of the FMAs into each C entry) is the same whatever the packing.
template <typename T>
void gemm_any_b(int64_t M, int64_t N, int64_t K, const T* A, int64_t sa_i, int64_t sa_k,
                const T* B, int64_t sb_k, int64_t sb_j, T* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K == 0 || M * N * K < (int64_t(1) << 16)) {
    gemm_small(M, N, K, A, sa_i, sa_k, B, sb_k, sb_j, C, ldc, accumulate);
    return;
  }
  constexpr int64_t NR = kNR<T>;
  constexpr int64_t kGroup = kMB / kMR;  // row panels per work item
  const int64_t n_ip = (M + kMR - 1) / kMR, n_jp = (N + NR - 1) / NR;
  auto& pool = ThreadPool::global();
  thread_local std::unique_ptr<T[]> bp_buf;  // the caller's; workers only read it
  thread_local size_t bp_cap = 0;
  T* bp = scratch(bp_buf, bp_cap, size_t(n_jp * NR * K));
  const int64_t grain = std::max<int64_t>(1, n_jp / (4 * pool.size()));
  pool.parallel_for(n_jp, grain, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) pack_b_panel(p * NR, N, 0, K, B, sb_k, sb_j, bp + p * NR * K);
  });
  const int64_t n_ig = (n_ip + kGroup - 1) / kGroup;
  const int64_t want_items = pool.width() > 1 ? 4 * int64_t(pool.width()) : 1;
  const int64_t n_jb = std::min(n_jp, std::max<int64_t>(1, (want_items + n_ig - 1) / n_ig));
  const int64_t jb_len = (n_jp + n_jb - 1) / n_jb;
  pool.parallel_for(n_ig * n_jb, 1, [&](int64_t b, int64_t e) {
    T out[kMR * NR];
    thread_local std::unique_ptr<T[]> pack_buf;
    thread_local size_t pack_cap = 0;
    T* apack = scratch(pack_buf, pack_cap, size_t(kKC * kGroup * kMR));
    for (int64_t t = b; t < e; ++t) {
      const int64_t ig = t / n_jb, jb = t % n_jb;
      const int64_t ip0 = ig * kGroup, ip1 = std::min(n_ip, ip0 + kGroup);
      const int64_t jp0 = jb * jb_len, jp1 = std::min(n_jp, jp0 + jb_len);
      // With fewer than kPackAStripes stripes (N ≤ 64: the attention products) packing A would
      // cost about as much as the products it feeds; the register tile then reads A in place (any
      // layout), and only a last panel of fewer than kMR rows is packed (zero-padded).
      const bool pack_a = jp1 - jp0 >= kPackAStripes;
      for (int64_t k0 = 0; k0 < K; k0 += kKC) {
        const int64_t kc = std::min(kKC, K - k0);
        if (pack_a) {
          pack_a_group(ip0, ip1, M, k0, kc, A, sa_i, sa_k, apack);
        } else if (M - (ip1 - 1) * kMR < kMR) {
          pack_a_panel((ip1 - 1) * kMR, M, k0, kc, A, sa_i, sa_k, apack + (ip1 - 1 - ip0) * kMR * kKC);
        }
        for (int64_t jp = jp0; jp < jp1; ++jp) {
          const int64_t j = jp * NR, nr = std::min(NR, N - j);
          const T* bk = bp + jp * NR * K + k0 * NR;
          for (int64_t ip = ip0; ip < ip1; ++ip) {
            const int64_t i = ip * kMR, mr = std::min(kMR, M - i);
            if (pack_a || mr < kMR)
              micro_tile(kc, apack + (ip - ip0) * kMR * kKC, 1, kMR, bk, NR, out);
            else
              micro_tile(kc, A + i * sa_i + k0 * sa_k, sa_i, sa_k, bk, NR, out);
            store_tile(out, mr, nr, C + i * ldc + j, ldc, accumulate || k0 > 0);
          }
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t sa_i, int64_t sa_k, const T* B,
          int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  gemm_any_b(M, N, K, A, sa_i, sa_k, B, ldb, int64_t(1), C, ldc, accumulate);
}

template <typename T>
void linear_forward(const T* X, int64_t n, int64_t in, const T* W, int64_t out, T* Y) {
  // Y = X · Wᵀ: B(k, j) = W[j][k]
  gemm_any_b(n, out, in, X, in, int64_t(1), W, int64_t(1), in, Y, out, false);
}

template <typename T>
void linear_backward(const T* dY, const T* X, int64_t n, int64_t in, const T* W, int64_t out,
                     T* dX, T* dW) {
  if (dX) gemm(n, in, out, dY, out, 1, W, in, dX, in, true);
  if (dW) gemm(out, in, n, dY, 1, out, X, in, dW, in, true);
}

template <typename T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int64_t n, int64_t dim, double eps) {
  ThreadPool::global().parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * dim;
      double ss = 0;  // the mean of squares is the precision-critical bit
      for (int64_t j = 0; j < dim; ++j) ss += double(xr[j]) * double(xr[j]);
      const T s = T(1.0 / std::sqrt(ss / double(dim) + eps));
      rstd[r] = s;
      for (int64_t j = 0; j < dim; ++j) y[r * dim + j] = (xr[j] * s) * w[j];
    }
  });
}

template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, int64_t n,
                      int64_t dim, T* dx, T* dw) {
  // y_j = x_j r w_j, r = (Σx²/dim + eps)^-½ ⇒ dx_j = r g_j - x_j r³ (Σ_k g_k x_k) / dim, g = dy ⊙ w
  ThreadPool::global().parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * dim;
      const T* g = dy + r * dim;
      double dot = 0;
      for (int64_t j = 0; j < dim; ++j) dot += double(g[j]) * double(w[j]) * double(xr[j]);
      const T s = rstd[r];
      const T c = T(dot / double(dim)) * s * s * s;
      for (int64_t j = 0; j < dim; ++j) dx[r * dim + j] += s * g[j] * w[j] - xr[j] * c;
    }
  });
  if (dw)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < dim; ++j) dw[j] += dy[r * dim + j] * x[r * dim + j] * rstd[r];
}

namespace {
template <typename T>
void rotate(T* x, const T* cs, int64_t n_freq, RopeStyle style, T sign) {
  for (int64_t i = 0; i < n_freq; ++i) {
    const T c = cs[2 * i], s = sign * cs[2 * i + 1];
    T* a = style == RopeStyle::Adjacent ? &x[2 * i] : &x[i];
    T* b = style == RopeStyle::Adjacent ? &x[2 * i + 1] : &x[i + n_freq];
    const T x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x0 * s + x1 * c;
  }
}
}  // namespace

template <typename T>
void rope_forward(T* x, const T* cs, int64_t n_freq, RopeStyle style) {
  rotate(x, cs, n_freq, style, T(1));
}

template <typename T>
void rope_backward(T* dx, const T* cs, int64_t n_freq, RopeStyle style) {
  rotate(dx, cs, n_freq, style, T(-1));
}

template <typename T>
void swiglu_forward(const T* a, const T* b, T* h, int64_t count) {
  ThreadPool::global().parallel_for(count, 4096, [&](int64_t lo, int64_t hi) {
    T sig[256];
    for (int64_t i0 = lo; i0 < hi; i0 += 256) {
      const int64_t m = std::min<int64_t>(256, hi - i0);
      sigmoid(a + i0, sig, m);
      for (int64_t i = 0; i < m; ++i) h[i0 + i] = a[i0 + i] * sig[i] * b[i0 + i];
    }
  });
}

template <typename T>
void swiglu_backward(const T* dh, const T* a, const T* b, T* da, T* db, int64_t count) {
  ThreadPool::global().parallel_for(count, 4096, [&](int64_t lo, int64_t hi) {
    T sg[256];
    for (int64_t i0 = lo; i0 < hi; i0 += 256) {
      const int64_t m = std::min<int64_t>(256, hi - i0);
      sigmoid(a + i0, sg, m);
      for (int64_t k = 0; k < m; ++k) {
        const int64_t i = i0 + k;
        const T sig = sg[k], silu = a[i] * sig;
        da[i] += dh[i] * b[i] * sig * (T(1) + a[i] * (T(1) - sig));
        db[i] += dh[i] * silu;
      }
    }
  });
}

template <typename T>
void softmax_forward(T* x, int64_t n) {
  if (n <= 0) return;
  const double sum = exp_shifted_sum(x, max_of(x, n), x, n);
  const T inv = T(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

template <typename T>
void softmax_backward(const T* p, const T* dp, T* dx, int64_t n) {
  double dot = 0;
  for (int64_t i = 0; i < n; ++i) dot += double(p[i]) * double(dp[i]);
  for (int64_t i = 0; i < n; ++i) dx[i] += p[i] * (dp[i] - T(dot));
}

template <typename T>
double cross_entropy_forward_backward(T* logits, const int32_t* labels, int64_t n, int64_t V,
                                      double coef) {
  std::vector<double> row_loss(static_cast<size_t>(n));
  ThreadPool::global().parallel_for(n, 16, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      T* z = logits + r * V;
      const T mx = max_of(z, V);
      row_loss[size_t(r)] = double(mx) - double(z[labels[r]]);
      // exp in T, once per logit (kept in place), sums in double
      const double sum = exp_shifted_sum(z, mx, z, V);
      row_loss[size_t(r)] += std::log(sum);
      const T c = T(coef), scale = T(coef / sum);
      for (int64_t v = 0; v < V; ++v) z[v] *= scale;
      z[labels[r]] -= c;
    }
  });
  double total = 0;
  for (double l : row_loss) total += l;
  return total;
}

#define WHALE_INSTANTIATE(T)                                                                   \
  template void gemm<T>(int64_t, int64_t, int64_t, const T*, int64_t, int64_t, const T*,       \
                        int64_t, T*, int64_t, bool);                                           \
  template void linear_forward<T>(const T*, int64_t, int64_t, const T*, int64_t, T*);          \
  template void linear_backward<T>(const T*, const T*, int64_t, int64_t, const T*, int64_t,    \
                                   T*, T*);                                                    \
  template void rmsnorm_forward<T>(const T*, const T*, T*, T*, int64_t, int64_t, double);      \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, int64_t, int64_t,  \
                                    T*, T*);                                                   \
  template void rope_forward<T>(T*, const T*, int64_t, RopeStyle);                             \
  template void rope_backward<T>(T*, const T*, int64_t, RopeStyle);                            \
  template void swiglu_forward<T>(const T*, const T*, T*, int64_t);                            \
  template void swiglu_backward<T>(const T*, const T*, const T*, T*, T*, int64_t);             \
  template void softmax_forward<T>(T*, int64_t);                                               \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t);                          \
  template double cross_entropy_forward_backward<T>(T*, const int32_t*, int64_t, int64_t, double);

WHALE_INSTANTIATE(float)
WHALE_INSTANTIATE(double)
#undef WHALE_INSTANTIATE

}  // namespace whale::train
