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

// Rows of N one task computes: a multiple of the AVX2 kernel's 4-row tile,
// and small enough that 2..64 threads all get work on Llama-sized layers.
constexpr int64_t kRowsPerTask = 16;

at::Tensor wo_gemm_cpu(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                       const c10::optional<at::Tensor>& bias, int64_t bits, int64_t group_size) {
  TORCH_CHECK(x.device().is_cpu(), "slimops.wo_gemm (CPU): x must be on the CPU, got ", x.device());
  const WoGemmShape s = check_wo_gemm_args(x, qweight, scales, bias, bits, group_size);
  if (s.m == 0 || s.n == 0) return at::empty(s.out_sizes, x.options());

  // Kernels take float32 rows with unit column stride; this copies only when
  // x is not already such (bf16/fp16, or a strided view).
  const at::Tensor x32 = x.reshape({s.m, s.k}).to(at::kFloat).contiguous();
  at::Tensor out32 = at::empty({s.m, s.n}, x.options().dtype(at::kFloat));
  c10::optional<at::Tensor> bias32;
  if (bias.has_value()) bias32 = bias->to(at::kFloat).contiguous();

  WoGemmParams p;
  p.x = x32.data_ptr<float>();
  p.qweight = qweight.data_ptr<int8_t>();
  p.scales = scales.data_ptr<float>();
  p.bias = bias32.has_value() ? bias32->data_ptr<float>() : nullptr;
  p.out = out32.data_ptr<float>();
  p.m = s.m;
  p.n = s.n;
  p.k = s.k;
  p.x_row_stride = s.k;
  p.out_row_stride = s.n;
  p.group_size = s.group_size;
  p.bits = static_cast<int>(bits);
  p.x_dtype = DType::kFloat32;

  const auto kernel = cpu::selected_cpu_isa() == cpu::CpuIsa::kAvx2 ? cpu::wo_gemm_int8_avx2
                                                                     : cpu::wo_gemm_int8_scalar;
  std::atomic<int> status{static_cast<int>(Status::kOk)};
  const int64_t tasks = (s.n + kRowsPerTask - 1) / kRowsPerTask;
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    const Status st = kernel(p, t0 * kRowsPerTask, std::min(t1 * kRowsPerTask, s.n));
    if (st != Status::kOk) status.store(static_cast<int>(st));
  });
  const Status st = static_cast<Status>(status.load());
  TORCH_CHECK(st == Status::kOk, "slimops.wo_gemm (CPU): kernel failed: ", status_string(st));
  if (x.scalar_type() != at::kFloat) out32 = out32.to(x.scalar_type());
  return out32.view(s.out_sizes);
}

}  // namespace
}  // namespace slimops

TORCH_LIBRARY_IMPL(slimops, CPU, m) { m.impl("wo_gemm", &slimops::wo_gemm_cpu); }
