#include "wo_gemm_args.h"

#include <c10/util/Exception.h>

namespace slimops {

DType kernel_dtype(const at::Tensor& t, const char* arg) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::kFloat32;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default:
      TORCH_CHECK(false, "slimops.wo_gemm: ", arg, " must be float32, float16 or bfloat16, got ",
                  t.scalar_type());
  }
  return DType::kFloat32;
}

WoGemmShape check_wo_gemm_args(const at::Tensor& x, const at::Tensor& qweight,
                               const at::Tensor& scales, const c10::optional<at::Tensor>& bias,
                               int64_t bits, int64_t group_size) {
  TORCH_CHECK(bits == 8, "slimops.wo_gemm: bits must be 8 (int4 is not implemented yet), got ",
              bits);
  TORCH_CHECK(x.dim() >= 1, "slimops.wo_gemm: x must have at least 1 dimension, got a scalar");
  kernel_dtype(x, "x");
  TORCH_CHECK(qweight.dim() == 2, "slimops.wo_gemm: qweight must be 2-D [N, K], got ",
              qweight.dim(), "-D with shape ", qweight.sizes());
  TORCH_CHECK(qweight.scalar_type() == at::kChar, "slimops.wo_gemm: qweight must be int8 for bits=8, got ",
              qweight.scalar_type());
  TORCH_CHECK(qweight.is_contiguous(), "slimops.wo_gemm: qweight must be contiguous");
  TORCH_CHECK(qweight.device() == x.device(), "slimops.wo_gemm: qweight is on ", qweight.device(),
              " but x is on ", x.device());
  TORCH_CHECK(scales.device() == x.device(), "slimops.wo_gemm: scales is on ", scales.device(),
              " but x is on ", x.device());

  WoGemmShape s;
  s.n = qweight.size(0);
  s.k = qweight.size(1);
  TORCH_CHECK(s.k > 0, "slimops.wo_gemm: qweight must have K > 0 columns, got shape ", qweight.sizes());
  TORCH_CHECK(x.size(-1) == s.k, "slimops.wo_gemm: x's last dimension must equal K = ", s.k,
              " (qweight is [N, K] = ", qweight.sizes(), "), got x of shape ", x.sizes());

  TORCH_CHECK(group_size == -1 || group_size > 0,
              "slimops.wo_gemm: group_size must be -1 (per channel) or positive, got ", group_size);
  s.group_size = group_size == -1 ? s.k : group_size;
  TORCH_CHECK(s.k % s.group_size == 0, "slimops.wo_gemm: K = ", s.k,
              " must be divisible by group_size = ", s.group_size);
  const int64_t groups = s.k / s.group_size;
  TORCH_CHECK(scales.scalar_type() == at::kFloat, "slimops.wo_gemm: scales must be float32, got ",
              scales.scalar_type());
  TORCH_CHECK(scales.dim() == 2 && scales.size(0) == s.n && scales.size(1) == groups,
              "slimops.wo_gemm: scales must have shape [N, K / group_size] = [", s.n, ", ", groups,
              "], got ", scales.sizes());
  TORCH_CHECK(scales.is_contiguous(), "slimops.wo_gemm: scales must be contiguous");

  if (bias.has_value()) {
    const at::Tensor& b = *bias;
    TORCH_CHECK(b.device() == x.device(), "slimops.wo_gemm: bias is on ", b.device(),
                " but x is on ", x.device());
    TORCH_CHECK(b.dim() == 1 && b.size(0) == s.n, "slimops.wo_gemm: bias must have shape [N] = [",
                s.n, "], got ", b.sizes());
    kernel_dtype(b, "bias");
  }

  s.m = x.numel() / s.k;
  s.out_sizes = x.sizes().vec();
  s.out_sizes.back() = s.n;
  return s;
}

}  // namespace slimops
