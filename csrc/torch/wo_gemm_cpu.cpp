// CPU implementation of slimops::wo_gemm: checks, float32 staging, the
// run-time ISA choice and the split of N across at::parallel_for threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>

#include "../cpu/cpu_features.h"
#include "../cpu/wo_gemm_cpu.h"
#include "wo_gemm_args.h"

namespace slimops {
namespace {

// Rows of N one task computes: a multiple of every AVX2 register tile, and
// small enough that 2..64 threads all get work on Llama-sized layers.
constexpr int64_t kRowsPerTask = 16;

template <typename Kernel>
void run_over_n(const WoGemmParams& p, Kernel&& kernel) {
  std::atomic<int> status{static_cast<int>(Status::kOk)};
  const int64_t tasks = (p.n + kRowsPerTask - 1) / kRowsPerTask;
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    const Status st = kernel(t0 * kRowsPerTask, std::min(t1 * kRowsPerTask, p.n));
    if (st != Status::kOk) status.store(static_cast<int>(st));
  });
  const Status st = static_cast<Status>(status.load());
  TORCH_CHECK(st == Status::kOk, "slimops.wo_gemm (CPU): kernel failed: ", status_string(st));
}

at::Tensor wo_gemm_cpu(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                       const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias, int64_t bits,
                       int64_t group_size) {
  TORCH_CHECK(x.device().is_cpu(), "slimops.wo_gemm (CPU): x must be on the CPU, got ", x.device());
  const WoGemmShape s = check_wo_gemm_args(x, qweight, scales, zeros, bias, bits, group_size);
  if (s.m == 0 || s.n == 0) return at::empty(s.out_sizes, x.options());

  // Kernels take float32 rows with unit column stride; this copies only when
  // x is not already such (bf16/fp16, or a strided view).
  const at::Tensor x32 = x.reshape({s.m, s.k}).to(at::kFloat).contiguous();
  at::Tensor out32 = at::empty({s.m, s.n}, x.options().dtype(at::kFloat));
  c10::optional<at::Tensor> bias32;
  if (bias.has_value()) bias32 = bias->to(at::kFloat).contiguous();

  WoGemmParams p = make_wo_gemm_params(s, qweight, scales, zeros, bias32, bits);
  p.x = x32.data_ptr<float>();
  p.x_row_stride = s.k;
  p.out = out32.data_ptr<float>();
  p.x_dtype = DType::kFloat32;

  const cpu::CpuIsa isa = cpu::selected_cpu_isa();
  const bool avx2 = isa >= cpu::CpuIsa::kAvx2;  // every later ISA implies AVX2
  if (avx2 && cpu::int16_path_applies(p)) {
    at::Tensor scratch = at::empty({cpu::x_int16_scratch_bytes(p)}, x.options().dtype(at::kByte));
    at::parallel_for(0, s.m, 16, [&](int64_t m0, int64_t m1) { cpu::quantize_x_int16(p, scratch.data_ptr(), m0, m1); });
    const cpu::XInt16 xq = cpu::x_int16_views(p, scratch.data_ptr());
    // Measured on the 2-core Xeon (bench/NOTES.md): 512-bit kernels win for
    // int8 and for the panel GEMM, but an int4 GEMV pays an extra shuffle per
    // block to fill a zmm and runs faster on 256-bit AVX-VNNI.
    // A forced ISA (tests, SLIMOPS_CPU_ISA) runs its own kernels only.
    const bool int4_gemv = bits == 4 && s.m < cpu::panel_min_m(cpu::PanelIsa::kAvx512, 4);
    const bool prefer_256 = int4_gemv && !cpu::cpu_isa_forced() && cpu::cpu_supports(cpu::CpuIsa::kAvxVnni);
    const auto kernel =
        isa == cpu::CpuIsa::kAvx512Vnni && !prefer_256
            ? cpu::wo_gemm_i16_avx512vnni
        : isa >= cpu::CpuIsa::kAvxVnni ? cpu::wo_gemm_i16_avxvnni
                                       : cpu::wo_gemm_i16_avx2;
    run_over_n(p, [&](int64_t n0, int64_t n1) { return kernel(p, xq, n0, n1); });
  } else if (avx2 && bits == 8 && !zeros.has_value()) {
    run_over_n(p, [&](int64_t n0, int64_t n1) { return cpu::wo_gemm_int8_avx2(p, n0, n1); });
  } else {
    run_over_n(p, [&](int64_t n0, int64_t n1) { return cpu::wo_gemm_scalar(p, n0, n1); });
  }
  if (x.scalar_type() != at::kFloat) out32 = out32.to(x.scalar_type());
  return out32.view(s.out_sizes);
}

}  // namespace
}  // namespace slimops

TORCH_LIBRARY_IMPL(slimops, CPU, m) { m.impl("wo_gemm", &slimops::wo_gemm_cpu); }
