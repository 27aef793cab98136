#include "wo_gemm_args.h"

#include <c10/util/Exception.h>

#include <utility>

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

WoGemmShape check_wo_gemm_args(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                               const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias,
                               int64_t bits, int64_t group_size) {
  TORCH_CHECK(bits == 8 || bits == 4, "slimops.wo_gemm: bits must be 4 or 8, got ", bits);
  TORCH_CHECK(x.dim() >= 1, "slimops.wo_gemm: x must have at least 1 dimension, got a scalar");
  kernel_dtype(x, "x");
  TORCH_CHECK(qweight.dim() == 2, "slimops.wo_gemm: qweight must be 2-D [N, K], got ",
              qweight.dim(), "-D with shape ", qweight.sizes());
  if (bits == 8) {
    TORCH_CHECK(qweight.scalar_type() == at::kChar, "slimops.wo_gemm: qweight must be int8 for bits=8, got ",
                qweight.scalar_type());
  } else {
    TORCH_CHECK(qweight.scalar_type() == at::kByte,
                "slimops.wo_gemm: qweight must be uint8 (two packed int4 per byte) for bits=4, got ",
                qweight.scalar_type());
  }
  TORCH_CHECK(qweight.is_contiguous(), "slimops.wo_gemm: qweight must be contiguous");
  TORCH_CHECK(qweight.device() == x.device(), "slimops.wo_gemm: qweight is on ", qweight.device(),
              " but x is on ", x.device());
  TORCH_CHECK(scales.device() == x.device(), "slimops.wo_gemm: scales is on ", scales.device(),
              " but x is on ", x.device());

  WoGemmShape s;
  s.n = qweight.size(0);
  s.k = bits == 8 ? qweight.size(1) : qweight.size(1) * 2;
  TORCH_CHECK(s.k > 0, "slimops.wo_gemm: qweight must have K > 0 columns, got shape ", qweight.sizes());
  TORCH_CHECK(x.size(-1) == s.k, "slimops.wo_gemm: x's last dimension must equal K = ", s.k, " (qweight is ",
              bits == 8 ? "[N, K] = " : "[N, K / 2] = ", qweight.sizes(), "), got x of shape ", x.sizes());
  if (bits == 4)
    TORCH_CHECK(s.k % kInt4BlockK == 0, "slimops.wo_gemm: int4 weights need K divisible by ", kInt4BlockK,
                " (the packing block), got K = ", s.k);

  TORCH_CHECK(group_size == -1 || group_size > 0,
              "slimops.wo_gemm: group_size must be -1 (per channel) or positive, got ", group_size);
  s.group_size = group_size == -1 ? s.k : group_size;
  TORCH_CHECK(s.k % s.group_size == 0, "slimops.wo_gemm: K = ", s.k,
              " must be divisible by group_size = ", s.group_size);
  if (bits == 4)
    TORCH_CHECK(s.group_size % kInt4BlockK == 0, "slimops.wo_gemm: int4 weights need group_size divisible by ",
                kInt4BlockK, ", got ", s.group_size);
  const int64_t groups = s.k / s.group_size;
  TORCH_CHECK(scales.scalar_type() == at::kFloat, "slimops.wo_gemm: scales must be float32, got ",
              scales.scalar_type());
  TORCH_CHECK(scales.dim() == 2 && scales.size(0) == s.n && scales.size(1) == groups,
              "slimops.wo_gemm: scales must have shape [N, K / group_size] = [", s.n, ", ", groups,
              "], got ", scales.sizes());
  TORCH_CHECK(scales.is_contiguous(), "slimops.wo_gemm: scales must be contiguous");

  if (zeros.has_value()) {
    const at::Tensor& z = *zeros;
    TORCH_CHECK(z.device() == x.device(), "slimops.wo_gemm: zeros is on ", z.device(), " but x is on ", x.device());
    TORCH_CHECK(z.scalar_type() == at::kFloat, "slimops.wo_gemm: zeros must be float32, got ", z.scalar_type());
    TORCH_CHECK(z.dim() == 2 && z.size(0) == s.n && z.size(1) == groups,
                "slimops.wo_gemm: zeros must have shape [N, K / group_size] = [", s.n, ", ", groups, "], got ",
                z.sizes());
    TORCH_CHECK(z.is_contiguous(), "slimops.wo_gemm: zeros must be contiguous");
  }

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

WoGemmParams make_wo_gemm_params(const WoGemmShape& s, const at::Tensor& qweight, const at::Tensor& scales,
                                 const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias32,
                                 int64_t bits) {
  WoGemmParams p;
  p.qweight = qweight.data_ptr();
  p.scales = scales.data_ptr<float>();
  p.zeros = zeros.has_value() ? zeros->data_ptr<float>() : nullptr;
  p.bias = bias32.has_value() ? bias32->data_ptr<float>() : nullptr;
  p.m = s.m;
  p.n = s.n;
  p.k = s.k;
  p.out_row_stride = s.n;
  p.group_size = s.group_size;
  p.bits = static_cast<int>(bits);
  return p;
}

int64_t check_lowrank_correction(const at::Tensor& x, const at::Tensor& lr_a, const at::Tensor& lr_b,
                                 const WoGemmShape& s) {
  constexpr const char* kWho = "slimops.wo_gemm_lowrank";
  TORCH_CHECK(lr_a.dim() == 2 && lr_b.dim() == 2, kWho, ": lr_a must be 2-D [N, r] and lr_b 2-D [r, K], got shapes ",
              lr_a.sizes(), " and ", lr_b.sizes());
  const int64_t r = lr_b.size(0);
  TORCH_CHECK(r >= 1, kWho, ": the rank (rows of lr_b) must be at least 1, got lr_b of shape ", lr_b.sizes());
  TORCH_CHECK(lr_b.size(1) == s.k, kWho, ": lr_b must be [r, K] = [", r, ", ", s.k, "], got ", lr_b.sizes());
  TORCH_CHECK(lr_a.size(0) == s.n && lr_a.size(1) == r, kWho, ": lr_a must be [N, r] = [", s.n, ", ", r, "], got ",
              lr_a.sizes());
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor&>{"lr_a", lr_a}, {"lr_b", lr_b}}) {
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), kWho, ": ", name, " must have x's dtype (", x.scalar_type(),
                "), got ", t.scalar_type());
    TORCH_CHECK(t.device() == x.device(), kWho, ": ", name, " is on ", t.device(), " but x is on ", x.device());
  }
  return r;
}

}  // namespace slimops
