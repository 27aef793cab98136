#include "cpu_features.h"

#include <atomic>
#include <cstring>

namespace slimops::cpu {

namespace {
std::atomic<int> g_selected{-1};  // -1: not chosen yet, use best_cpu_isa()
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kScalar: return "scalar";
    case CpuIsa::kAvx2: return "avx2";
  }
  return "unknown";
}

bool parse_cpu_isa(const char* name, CpuIsa* out) {
  if (name == nullptr) return false;
  if (std::strcmp(name, "scalar") == 0) { *out = CpuIsa::kScalar; return true; }
  if (std::strcmp(name, "avx2") == 0) { *out = CpuIsa::kAvx2; return true; }
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
  }
  return false;
}

CpuIsa best_cpu_isa() {
  return cpu_supports(CpuIsa::kAvx2) ? CpuIsa::kAvx2 : CpuIsa::kScalar;
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
  return Status::kOk;
}

}  // namespace slimops::cpu
