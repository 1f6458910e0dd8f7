// Element-wise exponentials of the training ops over whole arrays: cross-entropy over the
// vocabulary, attention softmax, SwiGLU and the router's sigmoid (~25 M exponentials per step of
// bench-config.json). Scalar std::exp with a serial double sum ran at ~8 ns per element
// (~10% of a step); the AVX2 path computes 8 at a time (kernels/exp_avx2.h: relative error
// ~2e-7, arguments clamped to [-87, 88]) and sums in 4 double lanes. Float builds without AVX2+FMA, and the double instantiations the finite-difference
// tests use, take std::exp.
#pragma once

#include <cstdint>

namespace whale::train {

// y[i] = exp(x[i] - shift) for i < n (y may be x); returns Σ y[i], summed in double.
double exp_shifted_sum(const float* x, float shift, float* y, int64_t n);
double exp_shifted_sum(const double* x, double shift, double* y, int64_t n);

// s[i] = 1 / (1 + exp(-a[i])) for i < n (s may be a).
void sigmoid(const float* a, float* s, int64_t n);
void sigmoid(const double* a, double* s, int64_t n);

// max of x[0..n), n >= 1.
float max_of(const float* x, int64_t n);
double max_of(const double* x, int64_t n);

}  // namespace whale::train
