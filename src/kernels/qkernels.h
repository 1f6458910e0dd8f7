// Internal interface between the matmul driver (matmul.cpp) and the per-ISA kernel files
// (qkernels_portable.cpp, qkernels_avx2.cpp, qkernels_avx512.cpp).
//
// Two precisions:
//  - Exact: float32 activations. Quantized weights are dequantized to f32 (a tile of rows at
//    a time, into per-thread scratch) and multiplied with FMA; f32/f16/bf16 weights are
//    converted on the fly. Error vs the reference: float rounding only (~1e-6 relative).
//  - Fast (quantized weights only): activations are quantized per token once per call, as
//    llama.cpp does (Q8_K blocks of 256 for the K-quants, Q8_0-style blocks of 32 for the
//    other types) and dotted with the weight quants in int8/int16/int32 arithmetic.
//
// The ISA files must not include headers that define inline functions or templates the rest
// of the program also uses (std containers, fmt, dtype.h's inline helpers): the linker keeps
// one copy of such functions, and an AVX-512 copy would crash on older CPUs. This header has
// only plain structs and declarations.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"  // the DType enum only: its inline helpers must not be used here

namespace whale::kern {

constexpr int kQK = 256;  // K-quant super-block
constexpr int kQ32 = 32;  // Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 block

// Quantized activations for K-quant weights (ggml's block_q8_K): x[e] ~ d * qs[e],
// qs in [-127, 127]; bsums[j] = sum of qs[16j .. 16j+15] (for the weights' min terms).
struct ActQ8K {
  float d;
  int8_t qs[kQK];
  int16_t bsums[kQK / 16];
};
static_assert(sizeof(ActQ8K) == 292);

// Quantized activations for Q8_0 / Q4_0 / Q4_1 / Q5_0 / Q5_1 weights: x[e] ~ d * qs[e], qs in
// [-127, 127]; sum = sum of qs (for the m term of Q4_1 / Q5_1 and the GEMM's unsigned weight
// planes, w + offset: see qkernels_x86.inc).
// (ggml stores d as f16; a float keeps a little more precision for the same cost.)
struct ActQ8B {
  float d;
  int8_t qs[kQ32];
  int32_t sum;
};
static_assert(sizeof(ActQ8B) == 40);

// A K-quant super-block unpacked for integer dot products:
//   w[e] = d * scale[e/16] * q[e] - dmin * min[e/16]
// (Q6_K: q = stored 0..63, min = 32 * scale, dmin = d.)
struct KBlock {
  uint8_t q[kQK];
  int16_t scale[kQK / 16];
  int16_t min[kQK / 16];
  float d, dmin;
};

// Arguments of one product Y[t][r] = sum_j W[r][j] X[t][j]. Plain pointers, so that the ISA
// files need nothing but this header.
struct GemmArgs {
  DType wtype;
  const uint8_t* w;          // row r at w + r * w_row_bytes
  uint64_t w_row_bytes;
  int64_t cols;              // elements per weight row (= activation length)
  int64_t n_tok;
  const float* x;            // Exact: token t at x + t * ldx
  int64_t ldx;
  const uint8_t* xq;         // Fast: quantized token t at xq + t * xq_stride
  size_t xq_stride;
  float* y;                  // Y[t][r] at y + t * ldy + r
  int64_t ldy;
};

// One ISA level's kernels. gemm_* compute rows [r0, r1) for every token.
struct KernelSet {
  const char* name;
  // Fast path for quantized weights (Q4_K, Q5_K, Q6_K with ActQ8K; Q8_0, Q4_0, Q4_1, Q5_0,
  // Q5_1 with ActQ8B).
  void (*gemm_fast)(const GemmArgs& a, int64_t r0, int64_t r1);
  // Exact path for F32 / F16 / BF16 and every quantized type but F8_E4M3
  // (F8_E4M3 goes through Matrix::dequantize_row in the driver).
  void (*gemm_exact)(const GemmArgs& a, int64_t r0, int64_t r1, float* scratch);
  // Dequantize one row of n elements (types as gemm_exact) into f32.
  void (*dequantize_row)(DType wtype, const uint8_t* src, float* dst, int64_t n);
};

const KernelSet& kernels_portable();
const KernelSet& kernels_avx2();    // only call where the CPU has AVX2+FMA+F16C
const KernelSet& kernels_avx512();  // only call where the CPU has AVX-512 F/BW/VL/DQ/VNNI

// Rows of the exact-path tile (the scratch of gemm_exact holds kExactRows * cols floats).
constexpr int kExactRows = 4;

// Scales and mins of a Q4_K / Q5_K super-block (12 packed bytes, see quants.h) per group of 16
// elements. static: every kernel file gets its own copy, compiled for its own ISA.
static inline void unpack_k4_scales(const uint8_t* q, int16_t* scale16, int16_t* min16) {
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    if (j < 4) {
      sc = q[j] & 63;
      m = q[j + 4] & 63;
    } else {
      sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
      m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
    scale16[2 * j] = scale16[2 * j + 1] = int16_t(sc);
    min16[2 * j] = min16[2 * j + 1] = int16_t(m);
  }
}

// Activation quantizers (one implementation for every ISA: the result is bit-identical).
void quantize_act_q8K(const float* x, ActQ8K* out, int64_t n);  // n multiple of 256
void quantize_act_q8B(const float* x, ActQ8B* out, int64_t n);  // n multiple of 32

}  // namespace whale::kern
