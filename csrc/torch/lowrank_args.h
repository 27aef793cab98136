// Argument checks of slimops::lowrank_linear shared by the CPU and CUDA
// bindings; every check names the argument, what was expected and what came.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <vector>

#include "../common/lowrank_params.h"

namespace slimops {

struct LowRankShape {
  int64_t m = 0;  // rows of x once its leading dims are flattened
  int64_t n = 0;
  int64_t k = 0;
  int64_t r = 0;
  std::vector<int64_t> out_sizes;  // x.sizes()[:-1] + [n]
};

// Checks everything that does not depend on the backend: dtypes (x, V and U
// one float dtype), ranks, shapes, devices, contiguity of V and U, bias [N].
LowRankShape check_lowrank_args(const at::Tensor& x, const at::Tensor& v, const at::Tensor& u,
                                const c10::optional<at::Tensor>& bias);

// Params with V/U/bias/dtype/sizes set; x, out and their row strides are the
// backend's to set. bias32 is the float32 copy of bias the backend made.
LowRankParams make_lowrank_params(const LowRankShape& s, const at::Tensor& v, const at::Tensor& u,
                                  const c10::optional<at::Tensor>& bias32);

}  // namespace slimops
