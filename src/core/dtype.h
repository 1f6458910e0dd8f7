// Element types of weights and activations, and the scalar conversions between them.
//
// One table (dtype_info) holds the per-type facts: block size in elements, block size in
// bytes, the GGML type id used by GGUF files and the dtype string used by safetensors.
// Quantized block layouts live in kernels/quants.h; this header only knows their sizes.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace whale {

enum class DType : uint8_t {
  F32,
  F16,
  BF16,
  F8_E4M3,  // float8_e4m3fn (DeepSeek-V3 FP8 release), scaled per 128x128 block elsewhere
  Q8_0,
  Q4_0,
  Q4_K,
  Q5_K,
  Q6_K,
  Q4_1,
  Q5_0,
  Q5_1,
  Count,
};

struct DTypeInfo {
  const char* name;      // "f32", "q4_K", ... (llama.cpp spelling)
  int block_elems;       // elements per block (1 for plain types)
  int block_bytes;       // bytes per block
  int ggml_type;         // GGML type id in GGUF files, -1 if GGUF has none
  const char* st_name;   // safetensors dtype string, nullptr if none
};

const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
std::optional<DType> dtype_from_safetensors(std::string_view name);

// Bytes needed by n elements, or nullopt if n is not a multiple of the block size
// or the byte count would overflow.
std::optional<uint64_t> dtype_bytes(DType t, uint64_t n);

// ---- scalar conversions ------------------------------------------------------------------

inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t bits_from_f32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

// Round to nearest even, NaN kept quiet (as PyTorch and ggml do).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = bits_from_f32(f);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 64);
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow to inf

// float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa; no infinities; S.1111.111 is NaN.
float fp8_e4m3_to_f32(uint8_t v);

}  // namespace whale
