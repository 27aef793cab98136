// Run-time choice of the CPU instruction set.
// AVX2 kernels live in translation units compiled with -mavx2 -mfma -mf16c;
// nothing from them may run before cpu_supports() has said yes, or an older
// CPU dies with SIGILL. The choice can be forced (SLIMOPS_CPU_ISA, or
// set_cpu_isa from Python) so tests compare every path on one machine.
#pragma once

#include "../common/status.h"

namespace slimops::cpu {

// Ordered from least to most capable; each implies the ones before it.
enum class CpuIsa : int { kScalar = 0, kAvx2 = 1, kAvxVnni = 2, kAvx512Vnni = 3 };

const char* cpu_isa_name(CpuIsa isa);
// Parses "scalar", "avx2", "avx_vnni" or "avx512_vnni"; returns false otherwise.
bool parse_cpu_isa(const char* name, CpuIsa* out);

// Whether this CPU and OS can run the ISA (cpuid + OS register-state check).
bool cpu_supports(CpuIsa isa);
// AVX-512 BF16 (vdpbf16ps) on top of kAvx512Vnni, and kernels built for it:
// a feature some kernels add within the AVX-512 tier, not an ISA of its own.
bool cpu_has_avx512_bf16();
// The fastest ISA this CPU supports.
CpuIsa best_cpu_isa();

// The ISA the kernels use now: the forced one if set, else best_cpu_isa().
CpuIsa selected_cpu_isa();
// Forces an ISA; kUnsupported if this CPU cannot run it (nothing changes then).
// A forced ISA runs its own kernels only; the automatic choice may mix in
// another ISA's kernel where that measured faster (see the CPU bindings).
Status set_cpu_isa(CpuIsa isa);
// Back to the automatic choice.
void reset_cpu_isa();
bool cpu_isa_forced();

}  // namespace slimops::cpu
