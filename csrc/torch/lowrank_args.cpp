#include "lowrank_args.h"

#include <c10/util/Exception.h>

#include "wo_gemm_args.h"

namespace slimops {

LowRankShape check_lowrank_args(const at::Tensor& x, const at::Tensor& v, const at::Tensor& u,
                                const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.dim() >= 1, "slimops.lowrank_linear: x must have at least 1 dimension, got a scalar");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16,
              "slimops.lowrank_linear: x must be float32, float16 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(v.dim() == 2, "slimops.lowrank_linear: V must be 2-D [r, K], got shape ", v.sizes());
  TORCH_CHECK(u.dim() == 2, "slimops.lowrank_linear: U must be 2-D [N, r], got shape ", u.sizes());
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{v, "V"}, {u, "U"}}) {
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), "slimops.lowrank_linear: ", name, " must have x's dtype (",
                x.scalar_type(), "), got ", t.scalar_type());
    TORCH_CHECK(t.device() == x.device(), "slimops.lowrank_linear: ", name, " is on ", t.device(),
                " but x is on ", x.device());
    TORCH_CHECK(t.is_contiguous(), "slimops.lowrank_linear: ", name, " must be contiguous");
  }
  LowRankShape s;
  s.r = v.size(0);
  s.k = v.size(1);
  s.n = u.size(0);
  TORCH_CHECK(s.r > 0 && s.k > 0, "slimops.lowrank_linear: V must have r > 0 rows and K > 0 columns, got shape ",
              v.sizes());
  TORCH_CHECK(u.size(1) == s.r, "slimops.lowrank_linear: U must be [N, r] with r = ", s.r,
              " (V's rows), got U of shape ", u.sizes());
  TORCH_CHECK(x.size(-1) == s.k, "slimops.lowrank_linear: x's last dimension must equal K = ", s.k,
              " (V is [r, K] = ", v.sizes(), "), got x of shape ", x.sizes());
  if (bias.has_value()) {
    const at::Tensor& b = *bias;
    TORCH_CHECK(b.device() == x.device(), "slimops.lowrank_linear: bias is on ", b.device(), " but x is on ",
                x.device());
    TORCH_CHECK(b.is_floating_point(), "slimops.lowrank_linear: bias must be a float tensor, got ", b.scalar_type());
    TORCH_CHECK(b.dim() == 1 && b.size(0) == s.n, "slimops.lowrank_linear: bias must have shape [N] = [", s.n,
                "], got ", b.sizes());
  }
  s.m = x.numel() / s.k;
  s.out_sizes = x.sizes().vec();
  s.out_sizes.back() = s.n;
  return s;
}

LowRankParams make_lowrank_params(const LowRankShape& s, const at::Tensor& v, const at::Tensor& u,
                                  const c10::optional<at::Tensor>& bias32) {
  LowRankParams p;
  p.v = v.data_ptr();
  p.u = u.data_ptr();
  p.bias = bias32.has_value() ? bias32->data_ptr<float>() : nullptr;
  p.m = s.m;
  p.n = s.n;
  p.k = s.k;
  p.r = s.r;
  p.dtype = kernel_dtype(v, "V");
  return p;
}

}  // namespace slimops
