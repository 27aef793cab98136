// CPU kernels of the 2:4 sparse matmul y = x @ W^T (+ bias) on the
// canonical layout (csrc/common/sparse24_params.h), bits = 16 only (the
// bindings dequantise int4 kept values first). x and out are float32 (the
// bindings stage them, O(M (K + N)) against the O(N K / 2) weight read);
// the kept values are float32 or bfloat16. Each call computes output
// columns [n0, n1) for every row of x, so the bindings split N across threads.
#pragma once

#include <cstdint>

#include "../common/sparse24_params.h"
#include "../common/status.h"

namespace slimops::cpu {

Status sparse24_rows_scalar(const Sparse24Params& p, int64_t n0, int64_t n1);
// AVX2/FMA/F16C (call only when cpu_supports(kAvx2)).
Status sparse24_rows_avx2(const Sparse24Params& p, int64_t n0, int64_t n1);
// The same for larger M from x transposed in blocks of 16 rows:
// xt [ceil(m / 16)][k][16] float32, rows past m zero (p.x is not read).
Status sparse24_rows_xt_avx2(const Sparse24Params& p, const float* xt, int64_t n0, int64_t n1);
// AVX-512 versions of both (call only when cpu_supports(kAvx512Vnni)).
Status sparse24_rows_avx512(const Sparse24Params& p, int64_t n0, int64_t n1);
Status sparse24_rows_xt_avx512(const Sparse24Params& p, const float* xt, int64_t n0, int64_t n1);

// AVX-512 BF16, bf16 x (staged as float32 in p.x) and bf16 kept values
// (call only when cpu_has_avx512_bf16()): per block of 16 rows of x a table
// of every group's 6 possible (x[i0], x[i1]) pair vectors, built for groups
// [g0, g1) into table [ceil(m / 16)][k / 4][kSparse24PairTableGroupBytes],
// 64-byte aligned; then the columns [n0, n1) from it.
constexpr int64_t kSparse24PairTableGroupBytes = 6 * 16 * 2 * 2;
Status sparse24_pair_table_avx512bf16(const Sparse24Params& p, uint16_t* table, int64_t g0, int64_t g1);
Status sparse24_rows_pairs_avx512bf16(const Sparse24Params& p, const uint16_t* table, int64_t n0, int64_t n1);

inline Status check_sparse24_cpu_params(const Sparse24Params& p, int64_t n0, int64_t n1) {
  if (p.bits != 16 || p.layout != Sparse24Layout::kCanonical) return Status::kUnsupported;
  if (p.dtype != DType::kFloat32 && p.dtype != DType::kBFloat16) return Status::kUnsupported;
  if (p.k % 8 != 0 || p.m < 0 || n0 < 0 || n1 > p.n || n0 > n1) return Status::kInvalidArgument;
  if (p.x_row_stride < p.k || p.out_row_stride < p.n) return Status::kInvalidArgument;
  return Status::kOk;
}

}  // namespace slimops::cpu
