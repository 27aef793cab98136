// Parameters of the 2:4 sparse matmul  y = x @ W^T (+ bias), where W [n, k]
// has at most 2 non-zeros in every group of 4 consecutive weights along k
// and is stored compressed: the kept values plus 2-bit positions.
//
// Canonical layout (CPU kernels; python/slimops/formats/sparse24.py):
//   values [n, k / 2], the two kept weights of each group of 4, in order;
//   meta   uint8 [n, k / 8]: byte j describes dense columns 8j .. 8j + 7, its
//          low nibble group 2j and its high nibble group 2j + 1; a group's
//          nibble is i0 | i1 << 2 with i0 < i1 the positions of its kept
//          values (a group with fewer than 2 non-zeros keeps zeros).
// CUDA layout: the same kept values and positions reordered for mma.sp
//   (python/slimops/formats/sparse24.py, to_cuda_layout, documents it).
//
// bits = 4 (int4 + 2:4): the kept values [n, k / 2] are quantised to int4 and
// packed like wo_gemm's int4 weight (uint8 [n, k / 4], blocks of 32 kept
// values, byte j holding value j low and j + 16 high), with float32 scales
// (and optional zero points) [n, k / group_size] per group of group_size
// dense columns: w = (q - zero) * scale, zero = 8 when symmetric.
#pragma once

#include <cstdint>

#include "dtype.h"

namespace slimops {

enum class Sparse24Layout : int { kCanonical = 0, kCuda = 1 };

struct Sparse24Params {
  // Activations [m, k], row stride x_row_stride elements, element type dtype.
  const void* x = nullptr;
  // Kept values: dtype [n, k / 2] when bits = 16, packed int4 when bits = 4.
  const void* values = nullptr;
  const uint8_t* meta = nullptr;
  // bits = 4 only: float32 [n, k / group_size]; zeros optional (nullptr: 8).
  const float* scales = nullptr;
  const float* zeros = nullptr;
  // Optional float32 bias [n]; nullptr if absent.
  const float* bias = nullptr;
  // Output [m, n], row stride out_row_stride elements, element type dtype.
  void* out = nullptr;

  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t x_row_stride = 0;
  int64_t out_row_stride = 0;
  int bits = 16;  // 16: values in dtype; 4: int4 kept values
  int64_t group_size = 0;
  DType dtype = DType::kFloat32;
  Sparse24Layout layout = Sparse24Layout::kCanonical;
};

}  // namespace slimops
