// Parameters of the weight-only GEMM  y = x @ dequant(Wq)^T (+ bias).
// One struct for every backend keeps kernel signatures stable as options
// (bits, zero points, layouts) are added; the bindings fill it from tensors
// after checking them, so kernels may trust every field.
#pragma once

#include <cstdint>

#include "dtype.h"

namespace slimops {

// int4 weights are packed in blocks of 32 along K (see python/slimops/formats/int4.py).
constexpr int64_t kInt4BlockK = 32;

struct WoGemmParams {
  // Activations [m, k], row stride x_row_stride elements, element type x_dtype.
  const void* x = nullptr;
  // Quantised weight, layout given by `bits`:
  //   bits = 8: int8 [n, k], row-major, contiguous.
  //   bits = 4: uint8 [n, k / 2], contiguous; in each block of 32 weights
  //             along k, byte j holds weight j (low nibble) and j + 16 (high).
  const void* qweight = nullptr;
  // float32 [n, k / group_size], contiguous.
  const float* scales = nullptr;
  // Optional float32 [n, k / group_size] zero points in quantised units:
  // w = (q - zero) * scale. nullptr means symmetric: zero = 0 (int8), 8 (int4).
  const float* zeros = nullptr;
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

// A low-rank correction of the quantised weight (wo_gemm_lowrank):
// y = x @ (dequant(Wq) + a @ b)^T + bias, computed as x @ dequant(Wq)^T +
// (x @ b^T) @ a^T with the [m, rank] intermediate in float32.
struct LowRankCorrection {
  // a [n, rank] and b [rank, k], contiguous, element type x_dtype.
  const void* a = nullptr;
  const void* b = nullptr;
  int64_t rank = 0;
};

// Symmetric zero point of a weight format (constexpr: callable from device
// code under --expt-relaxed-constexpr).
constexpr float default_zero(int bits) { return bits == 4 ? 8.f : 0.f; }

}  // namespace slimops
