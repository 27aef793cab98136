#include "sparse24_args.h"

#include <c10/util/Exception.h>

namespace slimops {
namespace {
constexpr const char* kOp = "slimops.sparse24_gemm";

void check_device(const at::Tensor& t, const char* name, const at::Tensor& x) {
  TORCH_CHECK(t.device() == x.device(), kOp, ": ", name, " is on ", t.device(), " but x is on ", x.device());
}
}  // namespace

Sparse24Shape check_sparse24_args(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta,
                                  const c10::optional<at::Tensor>& scales, const c10::optional<at::Tensor>& zeros,
                                  const c10::optional<at::Tensor>& bias, int64_t bits, int64_t group_size,
                                  int64_t layout) {
  TORCH_CHECK(bits == 16 || bits == 4, kOp, ": bits must be 16 (values in x's dtype) or 4 (int4 kept values), got ", bits);
  TORCH_CHECK(layout == 0 || layout == 1, kOp, ": layout must be 0 (canonical) or 1 (CUDA), got ", layout);
  TORCH_CHECK(x.dim() >= 1, kOp, ": x must have at least 1 dimension, got a scalar");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16, kOp,
              ": x must be float32, float16 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(meta.dim() == 2 && meta.scalar_type() == at::kByte, kOp, ": meta must be uint8 [N, K/8], got ",
              meta.scalar_type(), " ", meta.sizes());
  Sparse24Shape s;
  s.n = meta.size(0);
  s.k = meta.size(1) * 8;
  TORCH_CHECK(s.k > 0, kOp, ": meta must have K/8 > 0 columns, got ", meta.sizes());
  TORCH_CHECK(x.size(-1) == s.k, kOp, ": x's last dimension must equal K = ", s.k, " (meta is [N, K/8] = ",
              meta.sizes(), "), got x of shape ", x.sizes());
  TORCH_CHECK(values.dim() == 2, kOp, ": values must be 2-D, got ", values.sizes());
  if (bits == 16) {
    TORCH_CHECK(values.scalar_type() == x.scalar_type(), kOp, ": values must have x's dtype (", x.scalar_type(),
                ") for bits = 16, got ", values.scalar_type());
    TORCH_CHECK(values.size(0) == s.n && values.size(1) == s.k / 2, kOp, ": values must be [N, K/2] = [", s.n, ", ",
                s.k / 2, "], got ", values.sizes());
    TORCH_CHECK(!scales.has_value() && !zeros.has_value(), kOp, ": scales and zeros are for bits = 4 only");
  } else {
    TORCH_CHECK(values.scalar_type() == at::kByte, kOp, ": values must be uint8 (packed int4) for bits = 4, got ",
                values.scalar_type());
    TORCH_CHECK(values.size(0) == s.n && values.size(1) == s.k / 4, kOp, ": values must be [N, K/4] = [", s.n, ", ",
                s.k / 4, "] for bits = 4, got ", values.sizes());
    TORCH_CHECK(group_size > 0 && group_size % 64 == 0 && s.k % group_size == 0, kOp,
                ": group_size must be a multiple of 64 dividing K = ", s.k, ", got ", group_size);
    TORCH_CHECK(scales.has_value(), kOp, ": bits = 4 needs scales");
    for (const auto& [t, name] : {std::pair<const c10::optional<at::Tensor>&, const char*>{scales, "scales"}, {zeros, "zeros"}}) {
      if (!t.has_value()) continue;
      TORCH_CHECK(t->scalar_type() == at::kFloat && t->dim() == 2 && t->size(0) == s.n && t->size(1) == s.k / group_size,
                  kOp, ": ", name, " must be float32 [N, K/group_size] = [", s.n, ", ", s.k / group_size, "], got ",
                  t->scalar_type(), " ", t->sizes());
      TORCH_CHECK(t->is_contiguous(), kOp, ": ", name, " must be contiguous");
      check_device(*t, name, x);
    }
  }
  for (const auto& [t, name] : {std::pair<const at::Tensor&, const char*>{values, "values"}, {meta, "meta"}}) {
    TORCH_CHECK(t.is_contiguous(), kOp, ": ", name, " must be contiguous");
    check_device(t, name, x);
  }
  if (bias.has_value()) {
    TORCH_CHECK(bias->is_floating_point() && bias->dim() == 1 && bias->size(0) == s.n, kOp,
                ": bias must be a float [N] = [", s.n, "] tensor, got ", bias->scalar_type(), " ", bias->sizes());
    check_device(*bias, "bias", x);
  }
  s.m = x.numel() / s.k;
  s.out_sizes = x.sizes().vec();
  s.out_sizes.back() = s.n;
  return s;
}

}  // namespace slimops
