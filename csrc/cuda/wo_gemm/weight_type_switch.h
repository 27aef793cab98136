// The compile-time choices every tensor-core wo_gemm launcher makes from a
// call's parameters: activation type, weight bits, zero points. fn receives
// them as tags: fn(TypeTag<T>, std::integral_constant<int, kBits>,
// std::bool_constant<kZeros>), and each launcher picks its tile inside.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "../../common/static_switch.h"
#include "../../common/wo_gemm_params.h"

namespace slimops::cuda {

template <typename T>
struct TypeTag {
  using type = T;
};

template <typename Fn>
auto weight_type_switch(const WoGemmParams& p, Fn&& fn) {
  return BOOL_SWITCH(p.x_dtype == DType::kBFloat16, kBf16, [&] {
    using T = std::conditional_t<kBf16, __nv_bfloat16, __half>;
    return BOOL_SWITCH(p.bits == 4, kInt4, [&] {
      return BOOL_SWITCH(p.zeros != nullptr, kZeros, [&] {
        return fn(TypeTag<T>{}, std::integral_constant<int, kInt4 ? 4 : 8>{}, std::bool_constant<kZeros>{});
      });
    });
  });
}

}  // namespace slimops::cuda
