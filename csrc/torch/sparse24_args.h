// Argument checks of slimops::sparse24_gemm shared by the CPU and CUDA
// bindings; every check names the argument, what was expected and what came.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <vector>

#include "../common/sparse24_params.h"

namespace slimops {

struct Sparse24Shape {
  int64_t m = 0, n = 0, k = 0;
  std::vector<int64_t> out_sizes;  // x.sizes()[:-1] + [n]
};

// Checks x (float, [..., K]), values (x's dtype [N, K/2], or uint8 [N, K/4]
// for bits = 4), meta (uint8 [N, K/8]), scales / zeros (float32
// [N, K/group_size], bits = 4 only), bias ([N], any float), bits, group_size,
// layout (0 canonical, 1 CUDA), devices and contiguity.
Sparse24Shape check_sparse24_args(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta,
                                  const c10::optional<at::Tensor>& scales, const c10::optional<at::Tensor>& zeros,
                                  const c10::optional<at::Tensor>& bias, int64_t bits, int64_t group_size,
                                  int64_t layout);

}  // namespace slimops
