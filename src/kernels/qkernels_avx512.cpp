// The AVX-512 level (AVX-512 F/BW/VL/DQ/VNNI on top of AVX2): the AVX2 algorithm with VNNI
// dot products on 256-bit vectors. Compiled with those -m flags only (CMakeLists.txt), and
// only called where cpu_features() reports them.
#if defined(__x86_64__) || defined(__i386__)
#define WHALE_KERN_NS avx512
#define WHALE_KERN_NAME "avx512"
#define WHALE_KERN_AVX512BW 1
#define WHALE_KERN_VNNI 1
#include "kernels/qkernels_x86.inc"

namespace whale::kern {
const KernelSet& kernels_avx512() { return avx512::kSet; }
}  // namespace whale::kern
#else
#include "kernels/qkernels.h"
namespace whale::kern {
const KernelSet& kernels_avx512() { return kernels_portable(); }  // never selected off x86
}  // namespace whale::kern
#endif
