// Parameters of the fused low-rank projection  out = (x @ V^T) @ U^T + bias.
// One struct for every backend (as WoGemmParams): the bindings fill it after
// checking the tensors, so kernels may trust every field.
#pragma once

#include <cstdint>

#include "dtype.h"

namespace slimops {

struct LowRankParams {
  // x [m, k], row stride x_row_stride elements; V [r, k] and U [n, r]
  // row-major and contiguous, of element type dtype. CUDA: x and out are of
  // element type dtype too. CPU: x and out are float32 (the bindings stage
  // them, as for wo_gemm: O(M*(K+N)) against the O(r*(K+N)) weight reads).
  const void* x = nullptr;
  const void* v = nullptr;
  const void* u = nullptr;
  // Optional bias [n], float32 on every backend; nullptr if absent.
  const float* bias = nullptr;
  // out [m, n], row stride out_row_stride elements.
  void* out = nullptr;

  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t r = 0;
  int64_t x_row_stride = 0;
  int64_t out_row_stride = 0;
  DType dtype = DType::kFloat32;
};

}  // namespace slimops
