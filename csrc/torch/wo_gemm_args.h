// Argument checks of slimops::wo_gemm shared by the CPU and CUDA bindings.
// Every check names the argument, what was expected and what came, so a
// user's mistake surfaces as a clear RuntimeError in Python and kernels never
// see an input they were not written for.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <vector>

#include "../common/wo_gemm_params.h"

namespace slimops {

struct WoGemmShape {
  int64_t m = 0;  // rows of x once its leading dims are flattened
  int64_t n = 0;
  int64_t k = 0;
  int64_t group_size = 0;          // resolved: k for per-channel scales
  std::vector<int64_t> out_sizes;  // x.sizes()[:-1] + [n]
};

// Checks everything that does not depend on the backend and returns the shape.
WoGemmShape check_wo_gemm_args(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                               const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias,
                               int64_t bits, int64_t group_size);

// Checks the low-rank correction of slimops::wo_gemm_lowrank against x and
// the weight's shape: lr_a [N, r], lr_b [r, K], r >= 1, both in x's dtype and
// on x's device. Returns r.
int64_t check_lowrank_correction(const at::Tensor& x, const at::Tensor& lr_a, const at::Tensor& lr_b,
                                 const WoGemmShape& s);

// x_dtype as the kernels name it; TORCH_CHECKs that it is one they know.
DType kernel_dtype(const at::Tensor& t, const char* arg);

// The params every backend shares (pointers to x/out and row strides are the
// backend's to set).
WoGemmParams make_wo_gemm_params(const WoGemmShape& s, const at::Tensor& qweight, const at::Tensor& scales,
                                 const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias32,
                                 int64_t bits);

}  // namespace slimops
