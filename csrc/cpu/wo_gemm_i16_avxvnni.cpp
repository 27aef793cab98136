// AVX-VNNI build of the integer-path weight-only GEMM (wo_gemm_i16_kernel.h):
// the same tiles with vpdpwssd, which halves the inner loop's integer ops.
#if defined(__AVX2__) && defined(__FMA__) && defined(__AVXVNNI__)

#include "panel_ops_avx2.h"
#include "wo_gemm_i16_panel.h"

namespace slimops::cpu {

Status wo_gemm_i16_avxvnni(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  if (p.m < panel_min_m(PanelIsa::kAvx2, p.bits)) return i16::i16_gemm_dispatch<i16::Avx2Ops<true>>(p, x, n_begin, n_end);
  return i16::panel_gemm_dispatch<i16::PanelOps256<true>>(p, x, n_begin, n_end);
}

bool avxvnni_kernels_built() { return true; }

}  // namespace slimops::cpu

#else  // built without AVX-VNNI flags: cpu_supports(kAvxVnni) is false, never called

#include "wo_gemm_cpu.h"

namespace slimops::cpu {
Status wo_gemm_i16_avxvnni(const WoGemmParams&, const XInt16&, int64_t, int64_t) { return Status::kUnsupported; }
bool avxvnni_kernels_built() { return false; }
}  // namespace slimops::cpu

#endif
