#include "core/dtype.h"

#include <cmath>
#include <limits>

namespace whale {

namespace {
// Indexed by DType. Block sizes follow ggml (QK8_0 = QK4_0 = 32, QK_K = 256).
constexpr DTypeInfo kInfo[] = {
    {"f32", 1, 4, 0, "F32"},
    {"f16", 1, 2, 1, "F16"},
    {"bf16", 1, 2, 30, "BF16"},
    {"f8_e4m3", 1, 1, -1, "F8_E4M3"},
    {"q8_0", 32, 34, 8, nullptr},
    {"q4_0", 32, 18, 2, nullptr},
    {"q4_K", 256, 144, 12, nullptr},
    {"q5_K", 256, 176, 13, nullptr},
    {"q6_K", 256, 210, 14, nullptr},
    {"q4_1", 32, 20, 3, nullptr},
    {"q5_0", 32, 22, 6, nullptr},
    {"q5_1", 32, 24, 7, nullptr},
};
static_assert(sizeof(kInfo) / sizeof(kInfo[0]) == size_t(DType::Count));
}  // namespace

const DTypeInfo& dtype_info(DType t) { return kInfo[size_t(t)]; }

std::optional<DType> dtype_from_ggml(uint32_t ggml_type) {
  for (size_t i = 0; i < size_t(DType::Count); ++i)
    if (kInfo[i].ggml_type >= 0 && uint32_t(kInfo[i].ggml_type) == ggml_type) return DType(i);
  return std::nullopt;
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  for (size_t i = 0; i < size_t(DType::Count); ++i)
    if (kInfo[i].st_name && name == kInfo[i].st_name) return DType(i);
  return std::nullopt;
}

std::optional<uint64_t> dtype_bytes(DType t, uint64_t n) {
  const DTypeInfo& info = dtype_info(t);
  if (n % uint64_t(info.block_elems) != 0) return std::nullopt;
  uint64_t blocks = n / uint64_t(info.block_elems);
  if (blocks > std::numeric_limits<uint64_t>::max() / uint64_t(info.block_bytes))
    return std::nullopt;
  return blocks * uint64_t(info.block_bytes);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  if (exp == 0) {
    // zero or subnormal: man * 2^-24
    float f = std::ldexp(float(man), -24);
    return (h & 0x8000) ? -f : f;
  }
  if (exp == 31) return f32_from_bits(sign | 0x7f800000 | (man << 13));
  return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t f32_to_f16(float f) {
  uint32_t u = bits_from_f32(f);
  uint16_t sign = uint16_t((u >> 16) & 0x8000);
  uint32_t a = u & 0x7fffffff;
  if (a > 0x7f800000) return uint16_t(sign | 0x7e00);       // NaN
  if (a >= 0x477ff000) return uint16_t(sign | 0x7c00);      // rounds to >= 65520: inf
  if (a < 0x38800000) {                                     // below 2^-14: subnormal or zero
    // value * 2^24 rounded to nearest even gives the subnormal mantissa
    float v = f32_from_bits(a) * 16777216.0f;
    return uint16_t(sign | uint16_t(std::nearbyint(v)));
  }
  uint32_t exp = (a >> 23) - 112;
  uint32_t man = a & 0x7fffff;
  uint32_t h = (exp << 10) | (man >> 13);
  uint32_t rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // may carry into the exponent: fine
  return uint16_t(sign | h);
}

float fp8_e4m3_to_f32(uint8_t v) {
  const bool neg = v & 0x80;
  const uint32_t exp = (v >> 3) & 0xf;
  const uint32_t man = v & 0x7;
  float f;
  if (exp == 0xf && man == 0x7) {
    f = std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    f = std::ldexp(float(man), -9);  // subnormal: man/8 * 2^-6
  } else {
    f = std::ldexp(1.0f + float(man) / 8.0f, int(exp) - 7);
  }
  return neg ? -f : f;
}

}  // namespace whale
