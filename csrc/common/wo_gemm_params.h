// Parameters of the weight-only GEMM  y = x @ dequant(Wq)^T (+ bias).
// One struct for every backend keeps kernel signatures stable as options
// (bits, zero points, layouts) are added; the bindings fill it from tensors
// after checking them, so kernels may trust every field.
#pragma once

#include <cstdint>

#include "dtype.h"

namespace slimops {

struct WoGemmParams {
  // Activations [m, k], row stride x_row_stride elements, element type x_dtype.
  const void* x = nullptr;
  // Quantised weight, layout given by `bits`:
  //   bits = 8: int8 [n, k], row-major, contiguous (symmetric, q in [-127, 127]).
  const void* qweight = nullptr;
  // float32 [n, k / group_size], contiguous: w[n, k] = q[n, k] * scales[n, k / group_size].
  const float* scales = nullptr;
  // Optional bias [n], float32 on every backend; nullptr if absent.
  const float* bias = nullptr;
  // Output [m, n], row stride out_row_stride elements, element type x_dtype.
  void* out = nullptr;

  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t x_row_stride = 0;
  int64_t out_row_stride = 0;
  // Columns of k sharing one scale; equals k for per-output-channel scales.
  int64_t group_size = 0;
  int bits = 8;
  DType x_dtype = DType::kFloat32;
};

}  // namespace slimops
