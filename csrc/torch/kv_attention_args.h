// Argument checks of slimops::kv_attention shared by the CPU and CUDA
// bindings; every check names the argument, what was expected and what came.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include "../common/kv_attention_params.h"

namespace slimops {

// Checks ranks, shapes, dtypes (q, k, v one float dtype; caches that dtype
// or int8 with float32 scales), devices, unit head-dim strides, matching
// layouts of k_cache/v_cache, k/v and k_scale/v_scale, the paged layout, and
// fills every field of the params except out (the backend allocates it).
// Values inside cache_seqlens and block_table are the backend's to check
// where it can read them.
KvAttentionParams check_kv_attention_args(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                          const at::Tensor& cache_seqlens, const c10::optional<at::Tensor>& k,
                                          const c10::optional<at::Tensor>& v, c10::optional<double> softmax_scale,
                                          bool causal, const c10::optional<at::Tensor>& block_table,
                                          const c10::optional<at::Tensor>& k_scale,
                                          const c10::optional<at::Tensor>& v_scale);

}  // namespace slimops
