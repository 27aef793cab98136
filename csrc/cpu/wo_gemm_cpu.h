// CPU weight-only GEMM kernels. Each computes output columns [n_begin, n_end)
// for every row of x, so the caller can split N across threads
// (at::parallel_for in the bindings) without the kernels knowing of torch.
// CPU convention: x, bias and out are float32; the bindings convert
// bf16/fp16 activations once per call (O(M*K), negligible against O(M*N*K)).
#pragma once

#include <cstdint>

#include "../common/status.h"
#include "../common/wo_gemm_params.h"

namespace slimops::cpu {

// Activations quantised to int16 for the integer-MAC path: per row, one
// scale per block of x_block(p) along k (x ~= x_i16 * x_scale), and the sum
// of x over each weight group (for zero points: sum (q - z) x = sum q x - z sum x).
struct XInt16 {
  const int16_t* q = nullptr;         // [m, k]
  const float* scales = nullptr;      // [m, k / x_block(p)]
  const float* group_sums = nullptr;  // [m, k / group_size]
};
// k granularity of the integer path: weights are unpacked 32 at a time.
constexpr int64_t kXBlock = 32;

// Length of the x blocks sharing one int16 scale: 128 where the weight group
// allows, else the largest of 64 / 32 dividing it. Longer blocks let the
// kernel sum int32 products over 128 weights before one float conversion;
// shorter ones would confine an outlier's coarser rounding more tightly.
inline int64_t x_block(const WoGemmParams& p) {
  return p.group_size % 128 == 0 ? 128 : (p.group_size % 64 == 0 ? 64 : kXBlock);
}

// Bytes of scratch x_int16 needs: int16 [m, k] + float [m, k/x_block] + float [m, groups].
inline int64_t x_int16_scratch_bytes(const WoGemmParams& p) {
  return p.m * p.k * 2 + p.m * (p.k / x_block(p)) * 4 + p.m * (p.k / p.group_size) * 4;
}
// Quantises rows [m_begin, m_end) of the float32 x into `scratch` (laid out
// as x_int16_scratch_bytes says) and returns the views.
XInt16 quantize_x_int16(const WoGemmParams& p, void* scratch, int64_t m_begin, int64_t m_end);
XInt16 x_int16_views(const WoGemmParams& p, void* scratch);

// Whether the integer path can run: k and the group a multiple of 32.
inline bool int16_path_applies(const WoGemmParams& p) {
  return p.k % kXBlock == 0 && p.group_size % kXBlock == 0;
}

Status wo_gemm_scalar(const WoGemmParams& p, int64_t n_begin, int64_t n_end);

// Compiled with AVX2/FMA/F16C flags: call only when cpu_supports(kAvx2).
// Float path (int8, symmetric, any k and group): exact up to float rounding.
Status wo_gemm_int8_avx2(const WoGemmParams& p, int64_t n_begin, int64_t n_end);
// Integer path (int8 and int4, int16_path_applies): x quantised to int16 per
// x_block, so the result carries that rounding (~1e-4 relative; the tests
// bound it at 1e-3 for float32 x).
Status wo_gemm_i16_avx2(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end);
// The same with AVX-VNNI (vpdpwssd): call only when cpu_supports(kAvxVnni).
Status wo_gemm_i16_avxvnni(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end);
// False where the compiler had no -mavxvnni; the entry point above then only
// returns kUnsupported, and cpu_supports(kAvxVnni) is false.
bool avxvnni_kernels_built();
// The same with AVX-512 VNNI: call only when cpu_supports(kAvx512Vnni).
Status wo_gemm_i16_avx512vnni(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end);
bool avx512vnni_kernels_built();
// From this M the integer-path kernels switch from streaming GEMV tiles to
// the panel GEMM (wo_gemm_i16_panel.h). Measured on the 2-core Xeon,
// 8192x8192, 2 threads, A/B in one process (bench/NOTES.md): the GEMV tiles
// cost ~1 ms per row of x; the 512-bit panel ~3.7 ms at M = 2..4 and then
// ~0.3 ms per row (int4's unpack makes it dearer: it pays one row later);
// the 256-bit panel (8 columns a register, 16 registers) only from ~12 rows.
enum class PanelIsa { kAvx2, kAvx512 };
constexpr int64_t panel_min_m(PanelIsa isa, int bits) {
  return isa == PanelIsa::kAvx512 ? (bits == 8 ? 4 : 5) : 12;
}

// Rejects params a CPU kernel was not written for (shared by every ISA path).
inline Status check_wo_gemm_cpu_params(const WoGemmParams& p, int64_t n_begin, int64_t n_end) {
  if ((p.bits != 8 && p.bits != 4) || p.x_dtype != DType::kFloat32) return Status::kUnsupported;
  if (p.m < 0 || p.n < 0 || p.k <= 0 || p.group_size <= 0 || p.k % p.group_size != 0)
    return Status::kInvalidArgument;
  if (p.bits == 4 && (p.k % kInt4BlockK != 0 || p.group_size % kInt4BlockK != 0))
    return Status::kInvalidArgument;
  if (n_begin < 0 || n_end > p.n || n_begin > n_end) return Status::kInvalidArgument;
  if (p.x_row_stride < p.k || p.out_row_stride < p.n) return Status::kInvalidArgument;
  if (p.m > 0 && (p.x == nullptr || p.qweight == nullptr || p.scales == nullptr || p.out == nullptr))
    return Status::kInvalidArgument;
  return Status::kOk;
}

}  // namespace slimops::cpu
