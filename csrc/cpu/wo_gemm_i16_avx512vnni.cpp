// AVX-512 VNNI build of the integer-path weight-only GEMM (wo_gemm_i16_kernel.h):
// 512-bit vpdpwssd, one instruction per 32-weight block, and 32 registers for
// larger GEMM tiles; from M = panel_min_m(kAvx512Vnni, bits) the panel GEMM of
// wo_gemm_i16_panel.h.
#if defined(__AVX2__) && defined(__FMA__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)

#include "panel_ops_avx512.h"
#include "wo_gemm_i16_panel.h"

namespace slimops::cpu {

Status wo_gemm_i16_avx512vnni(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  if (p.m < panel_min_m(PanelIsa::kAvx512, p.bits)) return i16::i16_gemm_dispatch<i16::Avx512Ops>(p, x, n_begin, n_end);
  return i16::panel_gemm_dispatch<i16::PanelOps512>(p, x, n_begin, n_end);
}

bool avx512vnni_kernels_built() { return true; }

}  // namespace slimops::cpu

#else  // built without AVX-512 VNNI flags: cpu_supports(kAvx512Vnni) is false, never called

#include "wo_gemm_cpu.h"

namespace slimops::cpu {
Status wo_gemm_i16_avx512vnni(const WoGemmParams&, const XInt16&, int64_t, int64_t) { return Status::kUnsupported; }
bool avx512vnni_kernels_built() { return false; }
}  // namespace slimops::cpu

#endif
