// Tests of the scalar conversions (f16, bf16, fp8 e4m3) and of the ggml block formats in
// kernels/quants.h: hand-built blocks, a per-element reading of the GGUF layouts written
// from raw byte offsets, quantize -> dequantize round trips, dot_row and odd inputs.
#include "kernels/quants.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace whale {
namespace {

constexpr DType kQuantTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                                 DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
constexpr DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::F8_E4M3,
                               DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                               DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
// The types with an f16 offset m after d (x = d * q + m): f16 caps |m| at 65504.
bool has_min(DType t) { return t == DType::Q4_1 || t == DType::Q5_1; }

// Deterministic random numbers that do not depend on the standard library's distributions.
struct Rng {
  std::mt19937 g;
  explicit Rng(uint32_t seed) : g(seed) {}
  float uniform(float lo, float hi) { return lo + (hi - lo) * float(g() >> 8) * 0x1p-24f; }
  float normal() {
    const float u1 = (float(g() >> 8) + 1.0f) * 0x1p-24f;
    const float u2 = float(g() >> 8) * 0x1p-24f;
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853f * u2);
  }
  uint8_t byte() { return uint8_t(g() >> 24); }
};

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(*dtype_bytes(t, x.size()));
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  return q;
}

std::vector<float> dequantize(DType t, const std::vector<uint8_t>& q, size_t n) {
  std::vector<float> y(n);
  dequantize_row(t, q.data(), y.data(), int64_t(n));
  return y;
}

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
void wr16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}

// ---- the GGUF layouts, element by element, from raw byte offsets -----------------------

// 6-bit scale / min of sub-block s of Q4_K and Q5_K from the 12 packed bytes.
int k4_scale(const uint8_t* p, int s) {
  return s < 4 ? (p[s] & 0x3f) : ((p[s + 4] & 0x0f) | ((p[s - 4] >> 6) << 4));
}
int k4_min(const uint8_t* p, int s) {
  return s < 4 ? (p[s + 4] & 0x3f) : ((p[s + 4] >> 4) | ((p[s] >> 6) << 4));
}

float elem_q8_0(const uint8_t* b, int e) { return float(int8_t(b[2 + e])) * f16_to_f32(rd16(b)); }

float elem_q4_0(const uint8_t* b, int e) {
  const uint8_t byte = b[2 + e % 16];
  const int q = e < 16 ? (byte & 15) : (byte >> 4);
  return float(q - 8) * f16_to_f32(rd16(b));
}

// Q4_1: d @0, m @2, qs @4 (nibbles as Q4_0, no offset).
float elem_q4_1(const uint8_t* b, int e) {
  const uint8_t byte = b[4 + e % 16];
  const int q = e < 16 ? (byte & 15) : (byte >> 4);
  return float(q) * f16_to_f32(rd16(b)) + f16_to_f32(rd16(b + 2));
}

// Q5_0: d @0, qh @2 (32 bits, bit e = fifth bit of element e), qs @6; offset 16.
// Q5_1: d @0, m @2, qh @4, qs @8; no offset.
int q5_quant(const uint8_t* qh, const uint8_t* qs, int e) {
  const int lo4 = e < 16 ? (qs[e % 16] & 15) : (qs[e % 16] >> 4);
  return lo4 | ((qh[e / 8] >> (e % 8)) & 1) << 4;
}
float elem_q5_0(const uint8_t* b, int e) { return float(q5_quant(b + 2, b + 6, e) - 16) * f16_to_f32(rd16(b)); }
float elem_q5_1(const uint8_t* b, int e) {
  return float(q5_quant(b + 4, b + 8, e)) * f16_to_f32(rd16(b)) + f16_to_f32(rd16(b + 2));
}

// Q4_K: d @0, dmin @2, scales @4, qs @16. Element e is in sub-block s = e/32; chunk
// c = e/64 holds sub-blocks 2c (low nibbles) and 2c+1 (high nibbles) of qs[32c..32c+31].
float elem_q4_K(const uint8_t* b, int e) {
  const int s = e / 32, c = e / 64, l = e % 32;
  const uint8_t byte = b[16 + 32 * c + l];
  const int q = (s % 2 == 0) ? (byte & 15) : (byte >> 4);
  const float d = f16_to_f32(rd16(b)) * float(k4_scale(b + 4, s));
  const float m = f16_to_f32(rd16(b + 2)) * float(k4_min(b + 4, s));
  return d * float(q) - m;
}

// Q5_K: d @0, dmin @2, scales @4, qh @16, qs @48. The fifth bit of element e is bit s of
// qh[e % 32], s = e / 32.
float elem_q5_K(const uint8_t* b, int e) {
  const int s = e / 32, c = e / 64, l = e % 32;
  const uint8_t byte = b[48 + 32 * c + l];
  int q = (s % 2 == 0) ? (byte & 15) : (byte >> 4);
  q |= ((b[16 + l] >> s) & 1) << 4;
  const float d = f16_to_f32(rd16(b)) * float(k4_scale(b + 4, s));
  const float m = f16_to_f32(rd16(b + 2)) * float(k4_min(b + 4, s));
  return d * float(q) - m;
}

// Q6_K: ql @0, qh @128, scales @192, d @208. Element e uses scale e/16. In half h = e/128,
// quarter g = (e%128)/32 and lane l = e%32: low 4 bits are nibble (g >= 2) of
// ql[64h + 32(g&1) + l], high 2 bits are bits 2g..2g+1 of qh[32h + l].
float elem_q6_K(const uint8_t* b, int e) {
  const int h = e / 128, g = (e % 128) / 32, l = e % 32;
  const uint8_t lo = b[64 * h + 32 * (g & 1) + l];
  const int q = (g >= 2 ? (lo >> 4) : (lo & 15)) | (((b[128 + 32 * h + l] >> (2 * g)) & 3) << 4);
  return f16_to_f32(rd16(b + 208)) * float(int8_t(b[192 + e / 16])) * float(q - 32);
}

float elem(DType t, const uint8_t* b, int e) {
  switch (t) {
    case DType::Q8_0: return elem_q8_0(b, e);
    case DType::Q4_0: return elem_q4_0(b, e);
    case DType::Q4_1: return elem_q4_1(b, e);
    case DType::Q5_0: return elem_q5_0(b, e);
    case DType::Q5_1: return elem_q5_1(b, e);
    case DType::Q4_K: return elem_q4_K(b, e);
    case DType::Q5_K: return elem_q5_K(b, e);
    case DType::Q6_K: return elem_q6_K(b, e);
    default: return NAN;
  }
}

// ---- conversions ----------------------------------------------------------------------

TEST(Conversions, F16Values) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03ff), 1023 * 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0x0400), 0x1p-14f);  // smallest normal
  EXPECT_EQ(f16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0x8000), 0.0f);
}

TEST(Conversions, F16Rounding) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  // subnormals
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);         // tie -> even (0)
  EXPECT_EQ(f32_to_f16(0x1.000002p-25f), 0x0001);  // just above the tie
  EXPECT_EQ(f32_to_f16(3 * 0x1p-25f), 0x0002);     // 1.5 ulp -> 2
  EXPECT_EQ(f32_to_f16(-0x1p-24f), 0x8001);
  EXPECT_EQ(f32_to_f16(1023.5f * 0x1p-24f), 0x0400);  // rounds up into the normals
  EXPECT_EQ(f32_to_f16(0x1p-30f), 0x0000);
  // normals: ties to even
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(f32_to_f16(f32_from_bits(0x3f801001)), 0x3c01);  // 1 + 2^-11 + 2^-23
  EXPECT_EQ(f32_to_f16(2047.0f + 0.999f), 0x6800);  // carry into the exponent (2048)
  // overflow
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // tie between 65504 and 65536 -> inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e10f), 0xfc00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
}

TEST(Conversions, F16RoundTripAllValues) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;  // NaN
    ASSERT_EQ(f32_to_f16(f16_to_f32(uint16_t(h))), h) << std::hex << h;
  }
}

TEST(Conversions, BF16) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc040), -3.0f);
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808000)), 0x3f80);  // tie -> even
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f818000)), 0x3f82);  // tie -> even
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808001)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x7f7fffff)), 0x7f80);  // max float -> inf
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f32_from_bits(0x7f800001)))));  // sNaN kept NaN
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
    ASSERT_EQ(f32_to_bf16(bf16_to_f32(uint16_t(h))), h) << std::hex << h;
  }
}

TEST(Conversions, Fp8E4M3) {
  EXPECT_EQ(fp8_e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0xfe), -448.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x01), 0x1p-9f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x08), 0x1p-6f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0xb8), -1.0f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x3c), 1.5f);
  EXPECT_EQ(fp8_e4m3_to_f32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(fp8_e4m3_to_f32(0x80)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0xff)));
  EXPECT_EQ(fp8_e4m3_to_f32(0x78), 256.0f);  // exponent 15 is a normal exponent (no inf)
  int nans = 0;
  for (int v = 0; v < 256; ++v) nans += std::isnan(fp8_e4m3_to_f32(uint8_t(v)));
  EXPECT_EQ(nans, 2);
}

// ---- plain types through the row API ----------------------------------------------------

TEST(Quants, PlainTypesRowApi) {
  const std::vector<float> x = {1.0f, -2.5f, 0.1f, 65504.0f, 1e-8f, -0.0f, 3.14159f, 1e6f};
  EXPECT_EQ(dequantize(DType::F32, quantize(DType::F32, x), x.size()), x);
  const std::vector<float> h = dequantize(DType::F16, quantize(DType::F16, x), x.size());
  const std::vector<float> b = dequantize(DType::BF16, quantize(DType::BF16, x), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(h[i], f16_to_f32(f32_to_f16(x[i])));
    EXPECT_EQ(b[i], bf16_to_f32(f32_to_bf16(x[i])));
  }
  EXPECT_TRUE(std::isinf(h[7]));
  const std::vector<uint8_t> f8 = {0x38, 0x7e, 0x01, 0xb8};
  const std::vector<float> y = dequantize(DType::F8_E4M3, f8, 4);
  EXPECT_EQ(y, (std::vector<float>{1.0f, 448.0f, 0x1p-9f, -1.0f}));
}

// ---- hand-built blocks ----------------------------------------------------------------

TEST(Quants, HandBuiltQ8_0) {
  uint8_t b[34];
  wr16(b, 0x3800);  // d = 0.5
  for (int j = 0; j < 32; ++j) b[2 + j] = uint8_t(int8_t(j - 16));
  b[2 + 31] = 0x80;  // -128
  float y[32];
  dequantize_row(DType::Q8_0, b, y, 32);
  for (int j = 0; j < 31; ++j) EXPECT_EQ(y[j], 0.5f * float(j - 16)) << j;
  EXPECT_EQ(y[31], -64.0f);
}

TEST(Quants, HandBuiltQ4_0) {
  uint8_t b[18];
  wr16(b, 0x3400);  // d = 0.25
  for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(DType::Q4_0, b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.25f * float(j - 8)) << j;             // low nibbles: elements 0..15
    EXPECT_EQ(y[16 + j], 0.25f * float(7 - j)) << 16 + j;   // high nibbles: 16..31
  }
}

TEST(Quants, HandBuiltQ5_0) {
  uint8_t b[22];
  wr16(b, 0x3400);  // d = 0.25
  const uint32_t qh = 0x80010003u;  // fifth bits of elements 0, 1, 16, 31
  std::memcpy(b + 2, &qh, 4);
  for (int j = 0; j < 16; ++j) b[6 + j] = uint8_t(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(DType::Q5_0, b, y, 32);
  EXPECT_EQ(y[0], 0.0f);     // q = 0 + 16:  0.25 * 0
  EXPECT_EQ(y[1], 0.25f);    // q = 1 + 16
  EXPECT_EQ(y[2], -3.5f);    // q = 2:       0.25 * -14
  EXPECT_EQ(y[16], 3.75f);   // q = 15 + 16: 0.25 * 15
  EXPECT_EQ(y[17], -0.5f);   // q = 14
  EXPECT_EQ(y[31], 0.0f);    // q = 0 + 16
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], elem_q5_0(b, e)) << e;
}

TEST(Quants, HandBuiltQ4_1AndQ5_1) {
  uint8_t b4[20], b5[24];
  wr16(b4, 0x3800), wr16(b4 + 2, 0xc000);  // d = 0.5, m = -2
  wr16(b5, 0x3800), wr16(b5 + 2, 0xc000);
  const uint32_t qh = 0x00020001u;  // fifth bits of elements 0 and 17
  std::memcpy(b5 + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) b4[4 + j] = b5[8 + j] = uint8_t(j | ((15 - j) << 4));
  float y4[32], y5[32];
  dequantize_row(DType::Q4_1, b4, y4, 32);
  dequantize_row(DType::Q5_1, b5, y5, 32);
  EXPECT_EQ(y4[0], -2.0f);   // 0.5 * 0 - 2
  EXPECT_EQ(y4[16], 5.5f);   // 0.5 * 15 - 2
  EXPECT_EQ(y5[0], 6.0f);    // 0.5 * 16 - 2
  EXPECT_EQ(y5[17], 13.0f);  // 0.5 * (14 + 16) - 2
  EXPECT_EQ(y5[18], 4.5f);   // 0.5 * 13 - 2
  for (int e = 0; e < 32; ++e) {
    EXPECT_EQ(y4[e], elem_q4_1(b4, e)) << e;
    EXPECT_EQ(y5[e], elem_q5_1(b5, e)) << e;
  }
}

// Scales sc = {1,2,3,4,40,50,60,63} and mins m = {5,6,7,8,17,33,48,63}, packed by hand:
//   bytes 0..3  = sc[0..3] | (sc[4..7] >> 4) << 6 = 1|2<<6, 2|3<<6, 3|3<<6, 4|3<<6
//   bytes 4..7  = m[0..3]  | (m[4..7] >> 4) << 6  = 5|1<<6, 6|2<<6, 7|3<<6, 8|3<<6
//   bytes 8..11 = (sc[4..7] & 15) | (m[4..7] & 15) << 4 = 8|1<<4, 2|1<<4, 12|0<<4, 15|15<<4
constexpr uint8_t kPackedScales[12] = {129, 194, 195, 196, 69, 134, 199, 200, 24, 18, 12, 255};
constexpr int kSc[8] = {1, 2, 3, 4, 40, 50, 60, 63};
constexpr int kMin[8] = {5, 6, 7, 8, 17, 33, 48, 63};

TEST(Quants, ScaleMinK4Packing) {
  for (int s = 0; s < 8; ++s) {
    uint8_t sc, m;
    get_scale_min_k4(s, kPackedScales, &sc, &m);
    EXPECT_EQ(sc, kSc[s]) << s;
    EXPECT_EQ(m, kMin[s]) << s;
  }
}

TEST(Quants, HandBuiltQ4_K) {
  uint8_t b[144] = {};
  wr16(b, 0x3800);      // d = 0.5
  wr16(b + 2, 0x3400);  // dmin = 0.25
  std::memcpy(b + 4, kPackedScales, 12);
  for (int i = 0; i < 128; ++i) b[16 + i] = uint8_t((i % 16) | ((15 - i % 16) << 4));
  float y[256];
  dequantize_row(DType::Q4_K, b, y, 256);
  EXPECT_EQ(y[0], -1.25f);     // sub 0, qs[0] low = 0:         0.5*1*0 - 0.25*5
  EXPECT_EQ(y[33], 12.5f);     // sub 1, qs[1] high = 14:       0.5*2*14 - 0.25*6
  EXPECT_EQ(y[150], 115.75f);  // sub 4, qs[86] low = 6:        0.5*40*6 - 0.25*17
  EXPECT_EQ(y[180], 266.75f);  // sub 5, qs[84] high = 11:      0.5*50*11 - 0.25*33
  EXPECT_EQ(y[200], 228.0f);   // sub 6, qs[104] low = 8:       0.5*60*8 - 0.25*48
  EXPECT_EQ(y[255], -15.75f);  // sub 7, qs[127] high = 0:      0.5*63*0 - 0.25*63
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], elem_q4_K(b, e)) << e;
}

TEST(Quants, HandBuiltQ5_K) {
  uint8_t b[176] = {};
  wr16(b, 0x3800);      // d = 0.5
  wr16(b + 2, 0x3400);  // dmin = 0.25
  std::memcpy(b + 4, kPackedScales, 12);
  b[16 + 1] = 0xff;  // qh[1]: fifth bit set for elements 1, 33, 65, ..., 225
  b[16 + 8] = 0x40;  // qh[8]: bit 6 -> element 6*32 + 8 = 200
  for (int i = 0; i < 128; ++i) b[48 + i] = uint8_t((i % 16) | ((15 - i % 16) << 4));
  float y[256];
  dequantize_row(DType::Q5_K, b, y, 256);
  EXPECT_EQ(y[0], -1.25f);     // q = 0
  EXPECT_EQ(y[1], 7.25f);      // q = 1 + 16:  0.5*1*17 - 0.25*5
  EXPECT_EQ(y[33], 28.5f);     // q = 14 + 16: 0.5*2*30 - 0.25*6
  EXPECT_EQ(y[200], 708.0f);   // q = 8 + 16:  0.5*60*24 - 0.25*48
  EXPECT_EQ(y[232], 204.75f);  // q = 7:       0.5*63*7 - 0.25*63 (qh[8] bit 7 clear)
  EXPECT_EQ(y[225], 0.5f * 63 * (14 + 16) - 0.25f * 63);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], elem_q5_K(b, e)) << e;
}

TEST(Quants, HandBuiltQ6_K) {
  uint8_t b[210] = {};
  for (int i = 0; i < 128; ++i) b[i] = uint8_t(i * 7);  // ql
  b[128 + 0] = 0xe4;   // qh[0]: quarters 0..3 of lane 0 get high bits 0,1,2,3
  b[128 + 40] = 0x30;  // qh[40]: half 1, lane 8, quarter 2 gets high bits 3
  const int8_t sc[16] = {1, -1, 2, -2, 127, -128, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7};
  std::memcpy(b + 192, sc, 16);
  wr16(b + 208, 0x3400);  // d = 0.25
  float y[256];
  dequantize_row(DType::Q6_K, b, y, 256);
  EXPECT_EQ(y[0], -8.0f);    // q = 0:                 0.25*1*(0-32)
  EXPECT_EQ(y[32], -8.0f);   // q = (224&15)|1<<4=16:  0.25*2*(16-32)
  EXPECT_EQ(y[64], 0.0f);    // q = (0>>4)|2<<4 = 32:  0.25*127*0
  EXPECT_EQ(y[96], 22.5f);   // q = (224>>4)|3<<4=62:  0.25*3*30
  EXPECT_EQ(y[85], 736.0f);  // q = 147>>4 = 9:        0.25*-128*(9-32)
  EXPECT_EQ(y[200], 46.5f);  // q = (248>>4)|3<<4=63:  0.25*6*31
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], elem_q6_K(b, e)) << e;
}

// Random bytes (with sane f16 scales) against the per-element reading of the layout.
TEST(Quants, RandomBlocksMatchLayout) {
  Rng rng(7);
  for (DType t : kQuantTypes) {
    const DTypeInfo& info = dtype_info(t);
    const int nblocks = 5;
    std::vector<uint8_t> q(size_t(info.block_bytes) * nblocks);
    for (auto& v : q) v = rng.byte();
    for (int i = 0; i < nblocks; ++i) {
      uint8_t* b = q.data() + i * info.block_bytes;
      const float d = rng.uniform(-2.0f, 2.0f), dmin = rng.uniform(0.0f, 1.0f);
      if (t == DType::Q6_K) {
        wr16(b + 208, f32_to_f16(d));
      } else {
        wr16(b, f32_to_f16(d));
        if (t == DType::Q4_K || t == DType::Q5_K || has_min(t)) wr16(b + 2, f32_to_f16(dmin));
      }
    }
    const size_t n = size_t(info.block_elems) * nblocks;
    const std::vector<float> y = dequantize(t, q, n);
    for (int i = 0; i < nblocks; ++i)
      for (int e = 0; e < info.block_elems; ++e)
        ASSERT_EQ(y[size_t(i) * info.block_elems + e],
                  elem(t, q.data() + i * info.block_bytes, e))
            << dtype_name(t) << " block " << i << " elem " << e;
  }
}

// ---- known quantizer outputs ----------------------------------------------------------

TEST(Quants, Q8_0KnownQuantization) {
  std::vector<float> x(32, 0.0f);
  // amax = 127 gives d = 1 exactly; roundf rounds halves away from zero.
  const float vals[] = {127.0f, 2.5f, -2.5f, 0.49f, -0.5f, 3.7f, -126.6f, 0.5f};
  const int8_t want[] = {127, 3, -3, 0, -1, 4, -127, 1};
  for (int i = 0; i < 8; ++i) x[i] = vals[i];
  const std::vector<uint8_t> q = quantize(DType::Q8_0, x);
  EXPECT_EQ(rd16(q.data()), 0x3c00);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(int8_t(q[2 + i]), want[i]) << i;
  for (int i = 8; i < 32; ++i) EXPECT_EQ(q[2 + i], 0);
}

// Quant e (unsigned) of a Q4_0 or Q5_0 block.
int symmetric_quant(DType t, const uint8_t* b, int e) {
  if (t == DType::Q5_0) return q5_quant(b + 2, b + 6, e);
  return e < 16 ? (b[2 + e] & 15) : (b[2 + e - 16] >> 4);
}

TEST(Quants, Q4_0AndQ5_0KnownQuantization) {
  // The signed value of largest magnitude (-Z: Z = 8 for Q4_0, 16 for Q5_0) gives d = max / -Z
  // = 1, and q = (int)(x/d + Z + 0.5) clamped to 2Z - 1: round half up around the offset Z.
  // A positive extreme flips the sign of d: x = Z -> q 0 -> value Z, and x = -Z clamps to
  // q 2Z - 1 -> -(Z - 1).
  struct Case {
    DType t;
    int zero;
    std::vector<float> vals;
    std::vector<int> want;
    int negative_at;  // where the flipped block puts -Z
  };
  const Case cases[] = {
      {DType::Q4_0, 8, {-8.0f, 7.5f, 0.5f, -0.5f, 0.49f, 3.2f, -2.6f, 100.0f / 13}, {0, 15, 9, 8, 8, 11, 5, 15}, 1},
      {DType::Q5_0, 16, {-16.0f, 15.5f, 0.5f, -0.5f, 0.49f, 3.2f, -2.6f}, {0, 31, 17, 16, 16, 19, 13}, 20},
  };
  for (const Case& c : cases) {
    std::vector<float> x(32, 0.0f);
    std::copy(c.vals.begin(), c.vals.end(), x.begin());
    std::vector<uint8_t> q = quantize(c.t, x);
    EXPECT_EQ(rd16(q.data()), 0x3c00) << dtype_name(c.t);
    for (int i = 0; i < 32; ++i) {
      const int want = i < int(c.want.size()) ? c.want[size_t(i)] : c.zero;
      EXPECT_EQ(symmetric_quant(c.t, q.data(), i), want) << dtype_name(c.t) << " " << i;
    }
    std::fill(x.begin(), x.end(), 0.0f);
    x[0] = float(c.zero);
    x[size_t(c.negative_at)] = -float(c.zero);
    q = quantize(c.t, x);
    EXPECT_EQ(rd16(q.data()), 0xbc00) << dtype_name(c.t);
    const std::vector<float> y = dequantize(c.t, q, 32);
    EXPECT_EQ(y[0], float(c.zero)) << dtype_name(c.t);
    EXPECT_EQ(y[size_t(c.negative_at)], -float(c.zero - 1)) << dtype_name(c.t);
  }
}

TEST(Quants, Q4_1AndQ5_1KnownQuantization) {
  // x = -1 + i/16: min -1, max 0.9375. Q5_1: d = 1.9375 / 31 = 1/16 exactly, so every value
  // is on the grid and comes back exactly. Q4_1: d = 1.9375 / 15, q = (int)((x - min)/d + 0.5).
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = -1.0f + float(i) / 16;
  std::vector<uint8_t> q = quantize(DType::Q5_1, x);
  EXPECT_EQ(rd16(q.data()), f32_to_f16(0.0625f));
  EXPECT_EQ(rd16(q.data() + 2), f32_to_f16(-1.0f));
  EXPECT_EQ(dequantize(DType::Q5_1, q, 32), x);
  q = quantize(DType::Q4_1, x);
  const float d = 1.9375f / 15;
  EXPECT_EQ(rd16(q.data()), f32_to_f16(d));
  for (int i = 0; i < 32; ++i) {
    const int want = std::min(15, int((x[i] + 1.0f) * (1.0f / d) + 0.5f));
    const int got = i < 16 ? (q[4 + i] & 15) : (q[4 + i - 16] >> 4);
    EXPECT_EQ(got, want) << i;
  }
}

// ---- byte-exact agreement with ggml's reference quantizers ------------------------------

// Input made from raw mt19937 bits with sequenced float operations only (no libm), so it is
// the same on every platform; every product is exact, so FMA contraction cannot change it.
std::vector<float> golden_input(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  auto u = [&g] { return float(g() >> 8) * 0x1p-24f; };  // [0, 1)
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    float s = u();
    s += u();
    s += u();
    s += u();
    const float gauss = (s - 2.0f) * 2.0f;  // bell-shaped, sigma 1.15; exact product
    switch ((i / 256) % 4) {
      case 0: x[i] = gauss; break;
      case 1: x[i] = gauss + 3.0f; break;                                  // offset: mins
      case 2: x[i] = (g() % 16 == 0 ? 8.0f * gauss : gauss) * 0.01f; break;  // outliers
      default: x[i] = float(int(g() % 33) - 16) * 0.25f; break;             // many ties
    }
  }
  return x;
}
uint64_t fnv1a(const std::vector<uint8_t>& v) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : v) {
    h ^= b;
    h *= 0x100000001b3ull;
  }
  return h;
}

// FNV-1a hashes of quantize_row_{q8_0,q4_0,q4_1,q5_0,q5_1,q4_K,q5_K,q6_K}_ref output of
// llama.cpp's ggml (libggml-base.so, built without FMA; q4_1/q5_0/q5_1 from llama.cpp de3ff81)
// on golden_input(4096, 2024).
TEST(Quants, MatchesGgmlReferenceQuantizers) {
  const std::vector<float> x = golden_input(4096, 2024);
  EXPECT_EQ(fnv1a(quantize(DType::Q8_0, x)), 0xac41779caef85796ull);
  EXPECT_EQ(fnv1a(quantize(DType::Q4_0, x)), 0x560219d8e8d7579cull);
  EXPECT_EQ(fnv1a(quantize(DType::Q4_1, x)), 0xd51f5e6903f911e5ull);
  EXPECT_EQ(fnv1a(quantize(DType::Q5_0, x)), 0x487366eafd6b0943ull);
  EXPECT_EQ(fnv1a(quantize(DType::Q5_1, x)), 0x803bd325cb385fc9ull);
  EXPECT_EQ(fnv1a(quantize(DType::Q4_K, x)), 0x5d961b862ebdc4afull);
  EXPECT_EQ(fnv1a(quantize(DType::Q5_K, x)), 0x215f92ae4d06de9full);
  EXPECT_EQ(fnv1a(quantize(DType::Q6_K, x)), 0x9912ef364aa445acull);
}

// ---- round trips ------------------------------------------------------------------------

std::vector<float> normal_data(Rng& rng, size_t n, float sigma) {
  std::vector<float> x(n);
  for (auto& v : x) v = sigma * rng.normal();
  return x;
}

// Error of storing d as f16: 2^-11 relative, or 2^-25 absolute among the subnormals.
float f16_err(float d) { return std::max(d * 0x1p-11f, 0x1p-25f); }
// Largest error of one Q8_0 block: half a step plus the f16 error of d times the largest
// quant (127).
float q8_0_bound(const float* x) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  return (0.5f * d + 127 * f16_err(d)) * 1.001f;
}
// Q4_0: a step |d| = amax/8, at most one step when the side opposite the extreme clamps
// at 7 (e.g. +amax -> 7*|d|), otherwise half a step; plus the f16 error of d times 8.
float q4_0_bound(const float* x) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 8;
  return (d + 8 * f16_err(d)) * 1.001f;
}

TEST(Quants, RoundTripQ8_0AndQ4_0) {
  Rng rng(1);
  for (float sigma : {1.0f, 1e-3f, 300.0f}) {
    const std::vector<float> x = normal_data(rng, 32 * 64, sigma);
    for (DType t : {DType::Q8_0, DType::Q4_0}) {
      const std::vector<float> y = dequantize(t, quantize(t, x), x.size());
      double sum_err = 0, sum_half_step = 0;
      for (size_t blk = 0; blk < x.size() / 32; ++blk) {
        const float* xb = x.data() + blk * 32;
        const float bound = t == DType::Q8_0 ? q8_0_bound(xb) : q4_0_bound(xb);
        for (int j = 0; j < 32; ++j) {
          const float err = std::fabs(y[blk * 32 + j] - xb[j]);
          ASSERT_LE(err, bound) << dtype_name(t) << " sigma " << sigma << " block " << blk;
          sum_err += err;
          sum_half_step += bound / (t == DType::Q8_0 ? 1.0 : 2.0);
        }
      }
      // On average well below the worst case (uniform rounding error averages 1/4 step).
      EXPECT_LT(sum_err, 0.6 * sum_half_step) << dtype_name(t);
    }
  }
}

double rel_rmse(const std::vector<float>& x, const std::vector<float>& y) {
  double se = 0, sx = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    se += double(y[i] - x[i]) * (y[i] - x[i]);
    sx += double(x[i]) * x[i];
  }
  return std::sqrt(se / sx);
}

// Relative RMSE bounds on Gaussian data; measured values are about 0.071 (Q4_K), 0.036
// (Q5_K), 0.018 (Q6_K), 0.086 (Q4_0), 0.078 (Q4_1), 0.043 (Q5_0), 0.038 (Q5_1) and 0.0053
// (Q8_0).
double rmse_bound(DType t) {
  switch (t) {
    case DType::Q8_0: return 0.007;
    case DType::Q4_0: return 0.095;
    case DType::Q4_1: return 0.085;
    case DType::Q5_0: return 0.047;
    case DType::Q5_1: return 0.042;
    case DType::Q4_K: return 0.085;
    case DType::Q5_K: return 0.045;
    case DType::Q6_K: return 0.022;
    default: return 0;
  }
}

TEST(Quants, RoundTripRmse) {
  Rng rng(2);
  for (float sigma : {1.0f, 0.02f, 50.0f}) {
    const std::vector<float> x = normal_data(rng, 256 * 32, sigma);
    for (DType t : kQuantTypes) {
      const std::vector<float> y = dequantize(t, quantize(t, x), x.size());
      EXPECT_LT(rel_rmse(x, y), rmse_bound(t)) << dtype_name(t) << " sigma " << sigma;
    }
  }
}

// K-quants on data with an offset (mins matter) and on uniform data.
TEST(Quants, RoundTripShiftedAndUniform) {
  Rng rng(3);
  std::vector<float> shifted(256 * 16), uniform(256 * 16);
  for (auto& v : shifted) v = 5.0f + rng.normal();
  for (auto& v : uniform) v = rng.uniform(-1.0f, 1.0f);
  for (DType t : kQuantTypes) {
    for (const auto* x : {&shifted, &uniform}) {
      const std::vector<float> y = dequantize(t, quantize(t, *x), x->size());
      EXPECT_LT(rel_rmse(*x, y), rmse_bound(t)) << dtype_name(t);
    }
  }
}

// ---- dot_row ------------------------------------------------------------------------------

TEST(Quants, DotRowMatchesDequantizedDot) {
  Rng rng(4);
  for (DType t : kAllTypes) {
    for (int64_t n : {int64_t(256), int64_t(768), int64_t(4096)}) {
      std::vector<float> w = normal_data(rng, size_t(n), 0.5f);
      std::vector<uint8_t> q;
      if (t == DType::F8_E4M3) {
        q.resize(size_t(n));
        for (auto& v : q) v = uint8_t(rng.byte() & 0x77);  // finite, |v| < 256
      } else {
        q = quantize(t, w);
      }
      const std::vector<float> x = normal_data(rng, size_t(n), 1.0f);
      const std::vector<float> d = dequantize(t, q, size_t(n));
      float ref = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        ref += d[i] * x[i];
        mag += std::fabs(d[i] * x[i]);
      }
      const float got = dot_row(t, q.data(), x.data(), n);
      EXPECT_NEAR(got, ref, 1e-6f * mag) << dtype_name(t) << " n " << n;

      // Rows at odd byte offsets give the same results.
      std::vector<uint8_t> shifted(q.size() + 1);
      std::memcpy(shifted.data() + 1, q.data(), q.size());
      EXPECT_EQ(dot_row(t, shifted.data() + 1, x.data(), n), got) << dtype_name(t);
      std::vector<float> d2(static_cast<size_t>(n));
      dequantize_row(t, shifted.data() + 1, d2.data(), n);
      EXPECT_EQ(d2, d) << dtype_name(t);
      if (t != DType::F8_E4M3) {
        std::vector<uint8_t> q2(q.size() + 1);
        quantize_row(t, w.data(), q2.data() + 1, n);
        EXPECT_EQ(0, std::memcmp(q2.data() + 1, q.data(), q.size())) << dtype_name(t);
      }
    }
  }
}

TEST(Quants, EmptyRow) {
  for (DType t : kAllTypes) {
    EXPECT_EQ(dot_row(t, nullptr, nullptr, 0), 0.0f);
    dequantize_row(t, nullptr, nullptr, 0);
  }
}

// ---- odd inputs ---------------------------------------------------------------------------

TEST(Quants, AllZeroBlocks) {
  const std::vector<float> x(512, 0.0f);
  for (DType t : kQuantTypes) {
    const std::vector<uint8_t> q = quantize(t, x);
    for (float v : dequantize(t, q, x.size())) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
  // Q8_0 and Q6_K store all-zero blocks as zero bytes; Q4_0 stores d = -0 (0 / -8) with quants 8.
  for (uint8_t v : quantize(DType::Q8_0, x)) EXPECT_EQ(v, 0);
  for (uint8_t v : quantize(DType::Q6_K, x)) EXPECT_EQ(v, 0);
  const std::vector<uint8_t> q4 = quantize(DType::Q4_0, x);
  EXPECT_EQ(rd16(q4.data()) & 0x7fff, 0);  // d = 0 / -8 = -0
  EXPECT_EQ(q4[2], 0x88);
}

TEST(Quants, NegativeOnlyAndPositiveOnlyBlocks) {
  Rng rng(5);
  for (float sign : {-1.0f, 1.0f}) {
    std::vector<float> x(256 * 8);
    for (auto& v : x) v = sign * rng.uniform(1.0f, 10.0f);
    for (DType t : kQuantTypes) {
      const std::vector<float> y = dequantize(t, quantize(t, x), x.size());
      EXPECT_LT(rel_rmse(x, y), rmse_bound(t)) << dtype_name(t) << " sign " << sign;
      for (size_t blk = 0; t == DType::Q8_0 && blk < x.size() / 32; ++blk)
        for (int j = 0; j < 32; ++j)
          ASSERT_LE(std::fabs(y[blk * 32 + j] - x[blk * 32 + j]), q8_0_bound(&x[blk * 32]));
    }
  }
}

TEST(Quants, ConstantAndSingleSpikeBlocks) {
  for (DType t : kQuantTypes) {
    std::vector<float> x(256, 3.0f);
    std::vector<float> y = dequantize(t, quantize(t, x), x.size());
    for (float v : y) ASSERT_NEAR(v, 3.0f, 3.0f * 0.01f) << dtype_name(t);
    std::fill(x.begin(), x.end(), 0.0f);
    x[77] = -5.0f;
    y = dequantize(t, quantize(t, x), x.size());
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_NEAR(y[i], x[i], 5.0f * 0.01f) << dtype_name(t) << " " << i;
  }
}

TEST(Quants, HugeAndTinyValues) {
  Rng rng(6);
  for (float scale : {2e4f, 6e4f}) {
    const std::vector<float> x = normal_data(rng, 256 * 8, scale);
    for (DType t : kQuantTypes) {
      if (has_min(t)) continue;  // a block's minimum below -65504 does not fit its f16 m (as in ggml)
      const std::vector<float> y = dequantize(t, quantize(t, x), x.size());
      for (float v : y) ASSERT_TRUE(std::isfinite(v)) << dtype_name(t);
      EXPECT_LT(rel_rmse(x, y), rmse_bound(t)) << dtype_name(t) << " scale " << scale;
    }
  }
  // Values below the f16 range of the scales: results are finite and (nearly) zero.
  const std::vector<float> tiny = normal_data(rng, 256 * 2, 1e-30f);
  for (DType t : kQuantTypes) {
    const std::vector<float> y = dequantize(t, quantize(t, tiny), tiny.size());
    for (float v : y) ASSERT_LE(std::fabs(v), 1e-20f) << dtype_name(t);
  }
}

// NaN and infinities give garbage blocks, as in ggml, but no undefined behaviour (UBSan).
TEST(Quants, NonFiniteInputsAreDefined) {
  std::vector<float> x(512, 1.0f);
  x[3] = NAN;
  x[300] = INFINITY;
  x[301] = -INFINITY;
  for (DType t : kQuantTypes) {
    const std::vector<float> y = dequantize(t, quantize(t, x), x.size());
    EXPECT_EQ(y.size(), x.size());
  }
}

TEST(Quants, BadLengthsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::vector<uint8_t> buf(1024);
  std::vector<float> out(1024);
  EXPECT_DEATH(dequantize_row(DType::Q4_K, buf.data(), out.data(), 100), "multiple");
  EXPECT_DEATH(quantize_row(DType::Q8_0, out.data(), buf.data(), 33), "multiple");
  EXPECT_DEATH(quantize_row(DType::F8_E4M3, out.data(), buf.data(), 4), "not supported");
}

}  // namespace
}  // namespace whale
