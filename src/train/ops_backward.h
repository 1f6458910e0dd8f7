// Forward and backward primitives of the training engine, side by side, on a scalar type T
// (float for training; double for the finite-difference tests). Explicitly instantiated for
// both in ops_backward.cpp.
//
// Gradient convention (as llm.c): every *_backward ADDS into the gradients of its inputs and
// weights (dx += ..., dw += ...); callers zero buffers once. Forward outputs are assigned.
// Layouts are row-major; a linear weight is W[out][in] (Hugging Face / safetensors order) and
// activations are X[n][in] (one row per token).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "train/gemm.h"

namespace whale::train {

// Element-wise passes over a step's large buffers, across the pool (each element as the
// serial loop would compute it): the serial versions kept the other thread idle ~5% of a step.
template <typename T>
void fill_zero(T* x, int64_t n);
template <typename T>
void copy_into(const T* src, int64_t n, T* dst);
template <typename T>
void add_into(T* x, const T* y, int64_t n);  // x += y

// Y[n][out] = X[n][in] · Wᵀ
template <typename T>
void linear_forward(const T* X, int64_t n, int64_t in, const T* W, int64_t out, T* Y);
// dX += dY · W (dX may be null), dW += dYᵀ · X (dW may be null).
template <typename T>
void linear_backward(const T* dY, const T* X, int64_t n, int64_t in, const T* W, int64_t out,
                     T* dX, T* dW);

// Per row: y = x · r · w, r = 1/sqrt(mean(x²) + eps); rstd[row] = r.
template <typename T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int64_t n, int64_t dim, double eps);
template <typename T>
void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, int64_t n,
                      int64_t dim, T* dx, T* dw);

// Rotates x[0 .. 2*n_freq) in place by the angles whose cos/sin are cs[2i], cs[2i+1]; the
// backward rotates the gradient by the opposite angles (the rotation is orthogonal).
template <typename T>
void rope_forward(T* x, const T* cs, int64_t n_freq, RopeStyle style);
template <typename T>
void rope_backward(T* dx, const T* cs, int64_t n_freq, RopeStyle style);

// h = silu(a) ⊙ b
template <typename T>
void swiglu_forward(const T* a, const T* b, T* h, int64_t count);
// da += dh ⊙ b ⊙ silu'(a),  db += dh ⊙ silu(a)
template <typename T>
void swiglu_backward(const T* dh, const T* a, const T* b, T* da, T* db, int64_t count);

// In-place softmax of x[0..n).
template <typename T>
void softmax_forward(T* x, int64_t n);
// dx += p ⊙ (dp - Σ dp·p)
template <typename T>
void softmax_backward(const T* p, const T* dp, T* dx, int64_t n);

// Cross-entropy of logits rows against labels: returns Σ_rows (logsumexp - logit[label]) and
// REPLACES logits with coef · (softmax - onehot), the gradient of coef · Σ loss.
template <typename T>
double cross_entropy_forward_backward(T* logits, const int32_t* labels, int64_t n, int64_t V,
                                      double coef);

}  // namespace whale::train
