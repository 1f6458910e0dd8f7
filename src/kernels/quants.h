// Quantized block formats of ggml / llama.cpp (GGUF), bit-compatible with its layouts, plus
// portable reference kernels: dequantize, quantize and a dot product of one row.
//
// A row of n elements of a quantized type is n / block_elems consecutive blocks, with no
// padding between them. All multi-byte fields are little-endian; f16 fields are IEEE half.
// "Element e" below is the e-th value of the block in dequantized (row) order.
//
// Q8_0 (32 elements, 34 bytes):   f16 d; int8 qs[32]
//     x[e] = d * qs[e]
//
// Q4_0 (32 elements, 18 bytes):   f16 d; uint8 qs[16]
//     x[e]      = d * ((qs[e] & 0xF) - 8)    e in 0..15  (low nibbles)
//     x[e + 16] = d * ((qs[e] >> 4)  - 8)    e in 0..15  (high nibbles)
//
// Q4_1 (32 elements, 20 bytes):   f16 d; f16 m; uint8 qs[16]
//     x[e] = d * q[e] + m, q as Q4_0's nibbles (0..15, no offset)
//
// Q5_0 (32 elements, 22 bytes):   f16 d; uint8 qh[4]; uint8 qs[16]
//     q[e] = nibble as Q4_0 | bit e of the little-endian word qh, moved to bit 4 (0..31)
//     x[e] = d * (q[e] - 16)
//
// Q5_1 (32 elements, 24 bytes):   f16 d; f16 m; uint8 qh[4]; uint8 qs[16]
//     x[e] = d * q[e] + m, q as Q5_0's
//
// (llama.cpp writes Q5_0 / Q5_1 where a Q4_K / Q5_K tensor's rows do not split into
// super-blocks, e.g. DeepSeek-V2-Lite's expert down projections, 1408 columns.)
//
// Super-blocks of the K-quants hold QK_K = 256 elements.
//
// Q4_K (144 bytes):  f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128]
//     Eight sub-blocks of 32 elements, each with a 6-bit scale sc[s] and a 6-bit min m[s]
//     packed into scales[12] (get_scale_min_k4):
//        s < 4:  sc = scales[s] & 63                            m = scales[s+4] & 63
//        s >= 4: sc = (scales[s+4] & 0xF) | (scales[s-4] >> 6) << 4
//                m  = (scales[s+4] >> 4)  | (scales[s]   >> 6) << 4
//     The 256 elements form 4 chunks of 64; chunk c uses qs[32c .. 32c+31]:
//        element 64c + l      (l < 32) = d*sc[2c]   * (qs[32c+l] & 0xF) - dmin*m[2c]
//        element 64c + 32 + l (l < 32) = d*sc[2c+1] * (qs[32c+l] >> 4)  - dmin*m[2c+1]
//
// Q5_K (176 bytes):  f16 d; f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]
//     As Q4_K, with a fifth bit per element from qh: for chunk c the low-nibble element
//     64c+l adds 16 if qh[l] bit (2c) is set, the high-nibble element 64c+32+l adds 16 if
//     qh[l] bit (2c+1) is set. Quants are 0..31.
//
// Q6_K (210 bytes):  uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d
//     Two halves of 128 elements; half h uses ql[64h..64h+63], qh[32h..32h+31] and
//     scales[8h..8h+7]. Within a half, for l < 32 (is = l / 16):
//        q(l)      = (ql[l]    & 0xF) | ((qh[l] >> 0) & 3) << 4   scale scales[is]
//        q(l + 32) = (ql[l+32] & 0xF) | ((qh[l] >> 2) & 3) << 4   scale scales[is+2]
//        q(l + 64) = (ql[l]    >> 4)  | ((qh[l] >> 4) & 3) << 4   scale scales[is+4]
//        q(l + 96) = (ql[l+32] >> 4)  | ((qh[l] >> 6) & 3) << 4   scale scales[is+6]
//     element = d * scale * (q - 32); i.e. 16 sub-blocks of 16 elements, each with an
//     8-bit signed scale.
//
// Alignment: the structs below have alignof 2 (the f16 fields), exactly as ggml's. The row
// functions in this header accept any pointer alignment: they copy each block into a local
// struct (or read fields with memcpy), so rows at odd byte offsets are fine. Float pointers
// must be aligned for float.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace whale {

constexpr int QK8_0 = 32;
constexpr int QK4_0 = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

struct block_q8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[QK8_0];
};
static_assert(sizeof(block_q8_0) == 34, "wrong q8_0 block size");

struct block_q4_0 {
  uint16_t d;  // f16 scale
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q4_0) == 18, "wrong q4_0 block size");

struct block_q4_1 {
  uint16_t d;  // f16 scale
  uint16_t m;  // f16 offset (the block's minimum)
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q4_1) == 20, "wrong q4_1 block size");

struct block_q5_0 {
  uint16_t d;     // f16 scale
  uint8_t qh[4];  // fifth bits, bit e = element e
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q5_0) == 22, "wrong q5_0 block size");

struct block_q5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(block_q5_1) == 24, "wrong q5_1 block size");

struct block_q4_K {
  uint16_t d;     // f16 super-block scale of the quantized scales
  uint16_t dmin;  // f16 super-block scale of the quantized mins
  uint8_t scales[K_SCALE_SIZE];  // 6-bit scales and mins, see get_scale_min_k4
  uint8_t qs[QK_K / 2];          // 4-bit quants
};
static_assert(sizeof(block_q4_K) == 144, "wrong q4_K block size");

struct block_q5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];  // fifth bit of the quants
  uint8_t qs[QK_K / 2];  // low 4 bits of the quants
};
static_assert(sizeof(block_q5_K) == 176, "wrong q5_K block size");

struct block_q6_K {
  uint8_t ql[QK_K / 2];       // low 4 bits of the quants
  uint8_t qh[QK_K / 4];       // high 2 bits of the quants
  int8_t scales[QK_K / 16];   // 8-bit sub-block scales
  uint16_t d;                 // f16 super-block scale
};
static_assert(sizeof(block_q6_K) == 210, "wrong q6_K block size");

// Scale and min (6 bits each) of sub-block j (0..7) from the 12-byte packing of Q4_K/Q5_K.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = uint8_t(q[j] & 63);
    *m = uint8_t(q[j + 4] & 63);
  } else {
    *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The integer form of one block of 32 (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1): x[e] = d * q[e] + m, with
// q the signed weights (q - 8 / q - 16 for Q4_0 / Q5_0) and m = 0 for the symmetric types,
// unsigned 0..15 / 0..31 for Q4_1 / Q5_1.
void unpack_block32(DType t, const void* block, int* q, float* d, float* m);

// Dequantize n elements (n a multiple of the type's block size) from src into dst.
// Works for every DType; F8_E4M3 gives the raw e4m3 values (no block scale applied).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// Reference quantizer, n a multiple of the block size. Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1
// reproduce ggml's quantize_row_*_ref; the K-quants follow ggml's reference
// quantizers (make_qkx2_quants for Q4_K/Q5_K, make_qx_quants for Q6_K). F8_E4M3 is not
// supported (aborts).
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// Reference dot product of a row of n elements of type t with x: each block is
// dequantized into a local buffer and accumulated into one float in element order.
float dot_row(DType t, const void* row, const float* x, int64_t n);

}  // namespace whale
