#include "train/ops_backward.h"

#include <algorithm>
#include <cmath>

#include "core/threadpool.h"
#include "train/vec_math.h"

namespace whale::train {

namespace {
constexpr int64_t kElementGrain = 16384;  // elements per task of the element-wise passes
}  // namespace

template <typename T>
void fill_zero(T* x, int64_t n) {
  ThreadPool::global().parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) { std::fill(x + b, x + e, T(0)); });
}

template <typename T>
void copy_into(const T* src, int64_t n, T* dst) {
  ThreadPool::global().parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) { std::copy(src + b, src + e, dst + b); });
}

template <typename T>
void add_into(T* x, const T* y, int64_t n) {
  ThreadPool::global().parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] += y[i];
  });
}

template <typename T>
void linear_forward(const T* X, int64_t n, int64_t in, const T* W, int64_t out, T* Y) {
  // Y = X · Wᵀ: B(k, j) = W[j][k]
  gemm_strided(n, out, in, X, in, int64_t(1), W, int64_t(1), in, Y, out, false);
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
  if (dw)  // over column slices, each taking the rows in order (the serial loop's sums)
    ThreadPool::global().parallel_for(dim, 32, [&](int64_t j0, int64_t j1) {
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = j0; j < j1; ++j) dw[j] += dy[r * dim + j] * x[r * dim + j] * rstd[r];
    });
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
  template void fill_zero<T>(T*, int64_t);                                                     \
  template void copy_into<T>(const T*, int64_t, T*);                                           \
  template void add_into<T>(T*, const T*, int64_t);                                            \
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
