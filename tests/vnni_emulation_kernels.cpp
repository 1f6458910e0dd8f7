// The AVX-512 level's VNNI algorithm, compiled for AVX2 with vpdpbusd emulated, so that
// machines without AVX-512 (this project's CI) still check the integer sums of the VNNI
// variants (unsigned weights w + 128, one instruction per 4 products, int32 accumulation)
// against the AVX2 kernels. Compiled with -mavx2 -mfma -mf16c (tests/CMakeLists.txt) and only
// called where the CPU has those. Includes nothing but intrinsics and the kernel file, like
// the kernel levels themselves (see src/kernels/qkernels.h).
#include <immintrin.h>

namespace {

// vpdpbusd on 256 bits: each int32 lane of acc gains the sum of the 4 products of the
// unsigned bytes of u with the signed bytes of s in the same lane, without saturation.
inline __m256i emulated_dpbusd(__m256i acc, __m256i u, __m256i s) {
  const __m256i zero = _mm256_setzero_si256();
  // bytes 0..7 / 8..15 of each 128-bit half, widened to int16 (s sign-extended)
  const __m256i u_lo = _mm256_unpacklo_epi8(u, zero), u_hi = _mm256_unpackhi_epi8(u, zero);
  const __m256i s_lo = _mm256_srai_epi16(_mm256_unpacklo_epi8(s, s), 8);
  const __m256i s_hi = _mm256_srai_epi16(_mm256_unpackhi_epi8(s, s), 8);
  // madd gives pair sums; hadd joins the two pairs of each 4-byte lane, in lane order
  return _mm256_add_epi32(acc, _mm256_hadd_epi32(_mm256_madd_epi16(u_lo, s_lo), _mm256_madd_epi16(u_hi, s_hi)));
}

}  // namespace

#undef _mm256_dpbusd_epi32
#define _mm256_dpbusd_epi32 emulated_dpbusd
#define WHALE_KERN_NS vnni_emulated
#define WHALE_KERN_NAME "avx2+emulated-vnni"
#define WHALE_KERN_AVX512BW 0
#define WHALE_KERN_VNNI 1
#include "kernels/qkernels_x86.inc"

namespace whale::kern {
const KernelSet& kernels_vnni_emulated() { return vnni_emulated::kSet; }
}  // namespace whale::kern
