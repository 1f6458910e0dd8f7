// Run-time CPU feature detection and the instruction-set level the kernels dispatch on.
//
// Every kernel path is compiled into every build (per-file target flags), so a portable
// binary (-DWHALE_NATIVE=OFF) still runs the AVX2 / AVX-512 kernels where the CPU and the OS
// support them. A feature counts only when cpuid reports it AND xgetbv says the OS saves the
// matching register state (YMM for AVX2, ZMM + opmask for AVX-512).
//
// The active level defaults to the best one available; WHALE_ISA=portable|avx2|avx512 in the
// environment lowers it (a level above what the CPU has is capped, with a warning on stderr),
// and set_isa_level() changes it from code (tests force each level this way).
// AMX is detected (and only reported usable after arch_prctl grants XTILEDATA) but no kernel
// uses it yet.
#pragma once

#include <optional>
#include <string_view>

namespace whale {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;      // with OS YMM support
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vnni = false, avx512bf16 = false;       // with OS ZMM/opmask support
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;  // and XTILEDATA granted
};

// Detected once, on first call.
const CpuFeatures& cpu_features();

enum class IsaLevel { Portable = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(IsaLevel l);
std::optional<IsaLevel> isa_from_name(std::string_view s);

// Highest level this CPU and OS support (Avx2 needs AVX2+FMA+F16C; Avx512 needs in addition
// AVX-512 F/BW/VL/DQ/VNNI).
IsaLevel best_isa_level();
// The level kernels dispatch on now (first call reads WHALE_ISA).
IsaLevel isa_level();
// Force a level; throws whale::Error if the CPU lacks it.
void set_isa_level(IsaLevel l);

}  // namespace whale
