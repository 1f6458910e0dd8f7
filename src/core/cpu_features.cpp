#include "core/cpu_features.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define WHALE_X86 1
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace whale {

namespace {

#ifdef WHALE_X86
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) return Regs{};
  return r;
}

// XCR0: which register states the OS saves on context switch. Read with raw xgetbv so this
// file needs no -mxsave.
unsigned long long xcr0() {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}

bool bit(unsigned v, int b) { return (v >> b) & 1u; }

// Linux keeps the 8 KiB AMX tile state off until a process asks for it.
bool request_amx_permission() {
#if defined(__linux__) && defined(__x86_64__)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef WHALE_X86
  const Regs l1 = cpuid(1, 0);
  const bool osxsave = bit(l1.c, 27);
  if (!osxsave) return f;
  const unsigned long long xcr = xcr0();
  const bool os_ymm = (xcr & 0x6) == 0x6;           // SSE + AVX state
  const bool os_zmm = (xcr & 0xe6) == 0xe6;         // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr & 0x60000) == 0x60000;   // XTILECFG + XTILEDATA
  const Regs max = cpuid(0, 0);
  const Regs l7 = max.a >= 7 ? cpuid(7, 0) : Regs{};
  const Regs l7s1 = max.a >= 7 ? cpuid(7, 1) : Regs{};
  if (os_ymm) {
    f.fma = bit(l1.c, 12);
    f.f16c = bit(l1.c, 29);
    f.avx2 = bit(l1.c, 28) && bit(l7.b, 5);
  }
  if (os_ymm && os_zmm) {
    f.avx512f = bit(l7.b, 16);
    f.avx512bw = bit(l7.b, 30);
    f.avx512vl = bit(l7.b, 31);
    f.avx512dq = bit(l7.b, 17);
    f.avx512vnni = bit(l7.c, 11);
    f.avx512bf16 = bit(l7s1.a, 5);
  }
  if (os_amx && bit(l7.d, 24) && request_amx_permission()) {
    f.amx_tile = true;
    f.amx_bf16 = bit(l7.d, 22);
    f.amx_int8 = bit(l7.d, 25);
  }
#endif
  return f;
}

IsaLevel initial_level() {
  const IsaLevel best = best_isa_level();
  const char* env = std::getenv("WHALE_ISA");
  if (!env || !*env) return best;
  const auto want = isa_from_name(env);
  if (!want) {
    std::fprintf(stderr, "whale: warning: WHALE_ISA=%s is not portable, avx2 or avx512; using %s\n",
                 env, isa_name(best));
    return best;
  }
  if (int(*want) > int(best)) {
    std::fprintf(stderr, "whale: warning: WHALE_ISA=%s but this CPU supports at most %s; using %s\n",
                 env, isa_name(best), isa_name(best));
    return best;
  }
  return *want;
}

std::atomic<int>& level_store() {
  static std::atomic<int> level{int(initial_level())};
  return level;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const char* isa_name(IsaLevel l) {
  switch (l) {
    case IsaLevel::Portable: return "portable";
    case IsaLevel::Avx2: return "avx2";
    case IsaLevel::Avx512: return "avx512";
  }
  return "?";
}

std::optional<IsaLevel> isa_from_name(std::string_view s) {
  if (s == "portable") return IsaLevel::Portable;
  if (s == "avx2") return IsaLevel::Avx2;
  if (s == "avx512") return IsaLevel::Avx512;
  return std::nullopt;
}

IsaLevel best_isa_level() {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  if (avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni) return IsaLevel::Avx512;
  if (avx2) return IsaLevel::Avx2;
  return IsaLevel::Portable;
}

IsaLevel isa_level() { return IsaLevel(level_store().load(std::memory_order_relaxed)); }

void set_isa_level(IsaLevel l) {
  if (int(l) > int(best_isa_level()))
    fail("instruction set level {} is not supported by this CPU (best: {})", isa_name(l),
         isa_name(best_isa_level()));
  level_store().store(int(l), std::memory_order_relaxed);
}

}  // namespace whale
