// CPU kernels of the fused low-rank projection out = (x V^T) U^T + bias, in
// two passes over a float32 intermediate t [m, r] that the caller keeps
// (m * r floats: 32 KiB at m = 16, r = 512, so it stays in L1/L2 between
// the passes). Each pass computes a range of its output columns for every
// row of x, so the caller splits r, then n, across threads (at::parallel_for
// in the bindings) without the kernels knowing of torch.
#pragma once

#include <cstdint>

#include "../common/lowrank_params.h"
#include "../common/status.h"

namespace slimops::cpu {

// t[:, j] = x V[j]^T for j in [j_begin, j_end); t has row stride p.r.
Status lowrank_down_scalar(const LowRankParams& p, float* t, int64_t j_begin, int64_t j_end);
// out[:, n] = t U[n]^T + bias[n] for n in [n_begin, n_end).
Status lowrank_up_scalar(const LowRankParams& p, const float* t, int64_t n_begin, int64_t n_end);

// The same with AVX2/FMA/F16C (compiled with those flags; call only when
// cpu_supports(kAvx2)). Weights in float32, bfloat16 or float16.
Status lowrank_down_avx2(const LowRankParams& p, float* t, int64_t j_begin, int64_t j_end);
Status lowrank_up_avx2(const LowRankParams& p, const float* t, int64_t n_begin, int64_t n_end);

// Rejects params a CPU kernel was not written for (shared by every path).
inline Status check_lowrank_cpu_params(const LowRankParams& p, int64_t begin, int64_t end, int64_t limit) {
  if (p.m < 0 || p.n <= 0 || p.k <= 0 || p.r <= 0) return Status::kInvalidArgument;
  if (begin < 0 || end > limit || begin > end) return Status::kInvalidArgument;
  if (p.x_row_stride < p.k || p.out_row_stride < p.n) return Status::kInvalidArgument;
  if (p.m > 0 && (p.x == nullptr || p.v == nullptr || p.u == nullptr || p.out == nullptr))
    return Status::kInvalidArgument;
  return Status::kOk;
}

}  // namespace slimops::cpu
