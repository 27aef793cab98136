// slimops::wo_gemm_lowrank as two ops: wo_gemm, then the correction as
// lowrank_linear, added. The CPU implementation, and the CUDA one wherever
// the fused kernel does not apply.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

namespace slimops {

at::Tensor wo_gemm_lowrank_composed(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                                    const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias,
                                    const at::Tensor& lr_a, const at::Tensor& lr_b, int64_t bits, int64_t group_size);

}  // namespace slimops
