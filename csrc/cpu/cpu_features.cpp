#include "cpu_features.h"

#include "kv_attention_cpu.h"
#include "wo_gemm_cpu.h"

#include <atomic>
#include <cstring>
#include <initializer_list>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace slimops::cpu {

namespace {
std::atomic<int> g_selected{-1};  // -1: not chosen yet, use best_cpu_isa()
std::atomic<bool> g_forced{false};
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvxVnni: return "avx_vnni";
    case CpuIsa::kAvx512Vnni: return "avx512_vnni";
  }
  return "unknown";
}

bool parse_cpu_isa(const char* name, CpuIsa* out) {
  if (name == nullptr) return false;
  if (std::strcmp(name, "scalar") == 0) { *out = CpuIsa::kScalar; return true; }
  if (std::strcmp(name, "avx2") == 0) { *out = CpuIsa::kAvx2; return true; }
  if (std::strcmp(name, "avx_vnni") == 0) { *out = CpuIsa::kAvxVnni; return true; }
  if (std::strcmp(name, "avx512_vnni") == 0) { *out = CpuIsa::kAvx512Vnni; return true; }
  return false;
}

bool cpu_supports(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return true;
    case CpuIsa::kAvx2:
#if defined(__x86_64__) || defined(_M_X64)
      // libgcc's cpuid probe also checks that the OS saves the YMM registers.
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
#else
      return false;
#endif
    case CpuIsa::kAvxVnni: {
#if defined(__x86_64__) || defined(_M_X64)
      // AVX-VNNI (VEX-encoded vpdpwssd) is CPUID.(EAX=7,ECX=1):EAX bit 4;
      // libgcc 12's __builtin_cpu_supports("avxvnni") misses it (seen here).
      unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
      if (!avxvnni_kernels_built() || !cpu_supports(CpuIsa::kAvx2) ||
          !__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx))
        return false;
      return (eax >> 4) & 1u;
#else
      return false;
#endif
    }
    case CpuIsa::kAvx512Vnni:
#if defined(__x86_64__) || defined(_M_X64)
      // libgcc also checks that the OS saves the zmm state for avx512f.
      return avx512vnni_kernels_built() && cpu_supports(CpuIsa::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
#else
      return false;
#endif
  }
  return false;
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__) || defined(_M_X64)
  // CPUID.(EAX=7,ECX=1):EAX bit 5; the zmm state check is kAvx512Vnni's.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!avx512bf16_kernels_built() || !cpu_supports(CpuIsa::kAvx512Vnni) ||
      !__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx))
    return false;
  return (eax >> 5) & 1u;
#else
  return false;
#endif
}

CpuIsa best_cpu_isa() {
  for (CpuIsa isa : {CpuIsa::kAvx512Vnni, CpuIsa::kAvxVnni, CpuIsa::kAvx2})
    if (cpu_supports(isa)) return isa;
  return CpuIsa::kScalar;
}

CpuIsa selected_cpu_isa() {
  int v = g_selected.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(best_cpu_isa());
    g_selected.store(v, std::memory_order_relaxed);
  }
  return static_cast<CpuIsa>(v);
}

Status set_cpu_isa(CpuIsa isa) {
  if (!cpu_supports(isa)) return Status::kUnsupported;
  g_selected.store(static_cast<int>(isa), std::memory_order_relaxed);
  g_forced.store(true, std::memory_order_relaxed);
  return Status::kOk;
}

void reset_cpu_isa() {
  g_selected.store(static_cast<int>(best_cpu_isa()), std::memory_order_relaxed);
  g_forced.store(false, std::memory_order_relaxed);
}

bool cpu_isa_forced() { return g_forced.load(std::memory_order_relaxed); }

}  // namespace slimops::cpu
