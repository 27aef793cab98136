// CPU weight-only GEMM kernels. Each computes output columns [n_begin, n_end)
// for every row of x, so the caller can split N across threads
// (at::parallel_for in the bindings) without the kernels knowing of torch.
// CPU convention: x, bias and out are float32; the bindings convert
// bf16/fp16 activations once per call (O(M*K), negligible against O(M*N*K)).
#pragma once

#include <cstdint>

#include "../common/status.h"
#include "../common/wo_gemm_params.h"

namespace slimops::cpu {

Status wo_gemm_int8_scalar(const WoGemmParams& p, int64_t n_begin, int64_t n_end);

// Compiled with AVX2/FMA/F16C flags: call only when cpu_supports(kAvx2).
Status wo_gemm_int8_avx2(const WoGemmParams& p, int64_t n_begin, int64_t n_end);

// Rejects params a CPU kernel was not written for (shared by every ISA path).
inline Status check_wo_gemm_cpu_params(const WoGemmParams& p, int64_t n_begin, int64_t n_end) {
  if (p.bits != 8 || p.x_dtype != DType::kFloat32) return Status::kUnsupported;
  if (p.m < 0 || p.n < 0 || p.k <= 0 || p.group_size <= 0 || p.k % p.group_size != 0)
    return Status::kInvalidArgument;
  if (n_begin < 0 || n_end > p.n || n_begin > n_end) return Status::kInvalidArgument;
  if (p.x_row_stride < p.k || p.out_row_stride < p.n) return Status::kInvalidArgument;
  if (p.m > 0 && (p.x == nullptr || p.qweight == nullptr || p.scales == nullptr || p.out == nullptr))
    return Status::kInvalidArgument;
  return Status::kOk;
}

}  // namespace slimops::cpu
