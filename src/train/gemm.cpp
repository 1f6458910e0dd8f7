#include "train/gemm.h"

#include <algorithm>
#include <memory>

#include "core/threadpool.h"

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

// C[i][j] (+)= Σ_k A(i, k) · B(k, j) for a kMR-row × kNR-column tile clipped to mr × nr, with
// A(i, k) = a[i*a_si + k*a_sk] (one broadcast per row and k) and B(k, ·) the kNR contiguous
// values at b + k*b_sk. Packed panels are a_si = 1, a_sk = kMR, b_sk = kNR; the parallel gemm
// also reads A in place. The sums start from zero and are added to C once at the end, whatever
// the clipping, so every C entry gets the same bits from a full or a clipped tile.
template <typename T>
__attribute__((always_inline)) inline void micro_tile(int64_t kc, const T* a, int64_t a_si, int64_t a_sk, const T* b,
                       int64_t b_sk, int64_t mr, int64_t nr, T* C, int64_t ldc, bool acc) {
  using S = Simd<T>;
  using v = typename S::v;
  constexpr int64_t L = S::kLanes;
  v c0[kMR], c1[kMR];
#pragma GCC unroll 6
  for (int64_t i = 0; i < kMR; ++i) c0[i] = c1[i] = v{};
  for (int64_t k = 0; k < kc; ++k) {
    const v b0 = S::load(b + k * b_sk), b1 = S::load(b + k * b_sk + L);
    const T* ak = a + k * a_sk;
#pragma GCC unroll 6
    for (int64_t i = 0; i < kMR; ++i) {
      const T ai = ak[i * a_si];
      c0[i] += ai * b0;
      c1[i] += ai * b1;
    }
  }
  if (mr == kMR && nr == 2 * L) {  // the common case: straight from the registers into C
#pragma GCC unroll 6
    for (int64_t i = 0; i < kMR; ++i) {
      T* crow = C + i * ldc;
      if (acc) {
        c0[i] += S::load(crow);
        c1[i] += S::load(crow + L);
      }
      S::store(crow, c0[i]);
      S::store(crow + L, c1[i]);
    }
    return;
  }
  T out[kMR * 2 * L];
#pragma GCC unroll 6
  for (int64_t i = 0; i < kMR; ++i) {
    S::store(out + i * 2 * L, c0[i]);
    S::store(out + i * 2 * L + L, c1[i]);
  }
  store_tile(out, mr, nr, C, ldc, acc);
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
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    for (int64_t ib = 0; ib < n_iblk; ++ib)
      pack_a_panel(ib * kMR, M, k0, kc, A, sa_i, sa_k, apack.data() + ib * kMR * kKC);
    for (int64_t j = 0; j < N; j += NR) {
      pack_b_panel(j, N, k0, kc, B, sb_k, sb_j, bpack.data());
      for (int64_t ib = 0; ib < n_iblk; ++ib) {
        const int64_t i = ib * kMR;
        micro_tile(kc, apack.data() + ib * kMR * kKC, 1, kMR, bpack.data(), NR,
                   std::min(kMR, M - i), std::min(NR, N - j), C + i * ldc + j, ldc,
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


// B(k, j) = B[k*sb_k + j*sb_j] (k < K, j < N) packed for the register tile: kNR-column stripes,
// each a contiguous K × kNR panel, zero columns past N.
template <typename T>
class PackedB {
 public:
  // Packs on the global pool (serially inside a pool task); reuses the buffer of a previous pack.
  void pack(int64_t N, int64_t K, const T* B, int64_t sb_k, int64_t sb_j);
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  const T* data() const { return buf_.get(); }

 private:
  std::unique_ptr<T[]> buf_;  // not zero-filled: pack writes every entry
  size_t cap_ = 0;
  int64_t n_ = 0, k_ = 0;
};

template <typename T>
void PackedB<T>::pack(int64_t N, int64_t K, const T* B, int64_t sb_k, int64_t sb_j) {
  constexpr int64_t NR = kNR<T>;
  const int64_t n_jp = (N + NR - 1) / NR;
  n_ = N, k_ = K;
  T* bp = scratch(buf_, cap_, size_t(n_jp * NR * K));
  auto& pool = ThreadPool::global();
  const int64_t grain = std::max<int64_t>(1, n_jp / (4 * pool.size()));
  pool.parallel_for(n_jp, grain, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) pack_b_panel(p * NR, N, 0, K, B, sb_k, sb_j, bp + p * NR * K);
  });
}

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
// C (+)= A · B for i < M against a packed B (N = B.n(), K = B.k(), all three > 0).
template <typename T>
void gemm_packed(int64_t M, const T* A, int64_t sa_i, int64_t sa_k, const PackedB<T>& B, T* C,
                 int64_t ldc, bool accumulate) {
  const int64_t N = B.n(), K = B.k();
  constexpr int64_t NR = kNR<T>;
  constexpr int64_t kGroup = kMB / kMR;  // row panels per work item
  const int64_t n_ip = (M + kMR - 1) / kMR, n_jp = (N + NR - 1) / NR;
  const T* bp = B.data();
  auto& pool = ThreadPool::global();
  const int64_t n_ig = (n_ip + kGroup - 1) / kGroup;
  const int64_t want_items = pool.width() > 1 ? 4 * int64_t(pool.width()) : 1;
  const int64_t n_jb = std::min(n_jp, std::max<int64_t>(1, (want_items + n_ig - 1) / n_ig));
  const int64_t jb_len = (n_jp + n_jb - 1) / n_jb;
  pool.parallel_for(n_ig * n_jb, 1, [&](int64_t b, int64_t e) {
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
              micro_tile(kc, apack + (ip - ip0) * kMR * kKC, 1, kMR, bk, NR, mr, nr, C + i * ldc + j,
                         ldc, accumulate || k0 > 0);
            else
              micro_tile(kc, A + i * sa_i + k0 * sa_k, sa_i, sa_k, bk, NR, mr, nr, C + i * ldc + j,
                         ldc, accumulate || k0 > 0);
          }
        }
      }
    }
  });
}

}  // namespace

// The packing reads any layout of B, so Wᵀ needs no copy.
template <typename T>
void gemm_strided(int64_t M, int64_t N, int64_t K, const T* A, int64_t sa_i, int64_t sa_k,
                  const T* B, int64_t sb_k, int64_t sb_j, T* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K == 0 || M * N * K < (int64_t(1) << 16)) {
    gemm_small(M, N, K, A, sa_i, sa_k, B, sb_k, sb_j, C, ldc, accumulate);
    return;
  }
  thread_local PackedB<T> bp;  // the caller's; workers only read it
  bp.pack(N, K, B, sb_k, sb_j);
  gemm_packed(M, A, sa_i, sa_k, bp, C, ldc, accumulate);
}

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t sa_i, int64_t sa_k, const T* B,
          int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  gemm_strided(M, N, K, A, sa_i, sa_k, B, ldb, int64_t(1), C, ldc, accumulate);
}

#define WHALE_INSTANTIATE(T)                                                                    \
  template void gemm<T>(int64_t, int64_t, int64_t, const T*, int64_t, int64_t, const T*,        \
                        int64_t, T*, int64_t, bool);                                            \
  template void gemm_strided<T>(int64_t, int64_t, int64_t, const T*, int64_t, int64_t, const T*,  \
                              int64_t, int64_t, T*, int64_t, bool);

WHALE_INSTANTIATE(float)
WHALE_INSTANTIATE(double)
#undef WHALE_INSTANTIATE

}  // namespace whale::train
