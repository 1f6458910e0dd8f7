// The AVX2 level (AVX2 + FMA + F16C): this file is compiled with those -m flags only
// (CMakeLists.txt), and only called where cpu_features() reports them.
#if defined(__x86_64__) || defined(__i386__)
#define WHALE_KERN_NS avx2
#define WHALE_KERN_NAME "avx2"
#define WHALE_KERN_AVX512BW 0
#define WHALE_KERN_VNNI 0
#include "kernels/qkernels_x86.inc"

namespace whale::kern {
const KernelSet& kernels_avx2() { return avx2::kSet; }
}  // namespace whale::kern
#else
#include "kernels/qkernels.h"
namespace whale::kern {
const KernelSet& kernels_avx2() { return kernels_portable(); }  // never selected off x86
}  // namespace whale::kern
#endif
