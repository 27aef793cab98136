// slimops::wo_gemm_lowrank composed of the package's own ops, through the
// dispatcher so each runs its best kernel for the device (AVX2 / AVX-512 on
// the CPU; the CUDA fallback of wo_gemm_cuda.cpp). Registered as the CPU
// implementation: on the CPU the int4 GEMV and the low-rank passes are each
// bound by their own weight bytes, so fusing them would save one pass over
// x and a [M, N] add, little next to reading the weights.
#include "wo_gemm_lowrank.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "wo_gemm_args.h"

namespace slimops {

at::Tensor wo_gemm_lowrank_composed(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                                    const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias,
                                    const at::Tensor& lr_a, const at::Tensor& lr_b, int64_t bits, int64_t group_size) {
  static const auto wo_gemm =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("slimops::wo_gemm", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                            const c10::optional<at::Tensor>&, int64_t, int64_t)>();
  static const auto lowrank_linear =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("slimops::lowrank_linear", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&)>();
  const WoGemmShape s = check_wo_gemm_args(x, qweight, scales, zeros, bias, bits, group_size);
  check_lowrank_correction(x, lr_a, lr_b, s);
  at::Tensor y = wo_gemm.call(x, qweight, scales, zeros, bias, bits, group_size);
  return y.add_(lowrank_linear.call(x, lr_b.contiguous(), lr_a.contiguous(), c10::nullopt));
}

namespace {

at::Tensor wo_gemm_lowrank_cpu(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                               const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias,
                               const at::Tensor& lr_a, const at::Tensor& lr_b, int64_t bits, int64_t group_size) {
  TORCH_CHECK(x.device().is_cpu(), "slimops.wo_gemm_lowrank (CPU): x must be on the CPU, got ", x.device());
  return wo_gemm_lowrank_composed(x, qweight, scales, zeros, bias, lr_a, lr_b, bits, group_size);
}

}  // namespace
}  // namespace slimops

TORCH_LIBRARY_IMPL(slimops, CPU, m) { m.impl("wo_gemm_lowrank", &slimops::wo_gemm_lowrank_cpu); }
