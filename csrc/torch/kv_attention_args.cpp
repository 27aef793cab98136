#include "kv_attention_args.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <utility>

#include "wo_gemm_args.h"

namespace slimops {
namespace {

constexpr const char* kOp = "slimops.kv_attention";

void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& q) {
  TORCH_CHECK(t.device() == q.device(), kOp, ": ", name, " is on ", t.device(), " but q is on ", q.device());
}

void check_unit_last_stride(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.stride(-1) == 1, kOp, ": ", name, " must have a contiguous last dimension (stride 1), got strides ",
              t.strides());
}

// Two tensors the kernels address with one set of strides.
void check_twins(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes(), kOp, ": ", a_name, " and ", b_name,
              " must have the same dtype and shape, got ", a.scalar_type(), " ", a.sizes(), " and ", b.scalar_type(),
              " ", b.sizes());
  // Strides of size-1 dims are never used to address anything, and views
  // often differ there (a [B, 1, H, D] k made contiguous and its v sliced).
  for (int64_t i = 0; i < a.dim(); ++i) {
    TORCH_CHECK(a.size(i) <= 1 || a.stride(i) == b.stride(i), kOp, ": ", a_name, " and ", b_name,
                " must have the same strides, got ", a.strides(), " and ", b.strides());
  }
}

}  // namespace

KvAttentionParams check_kv_attention_args(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                                          const at::Tensor& cache_seqlens, const c10::optional<at::Tensor>& k,
                                          const c10::optional<at::Tensor>& v, c10::optional<double> softmax_scale,
                                          bool causal, const c10::optional<at::Tensor>& block_table,
                                          const c10::optional<at::Tensor>& k_scale,
                                          const c10::optional<at::Tensor>& v_scale) {
  TORCH_CHECK(q.dim() == 4, kOp, ": q must be 4-D [B, Sq, Hq, D], got shape ", q.sizes());
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kHalf || q.scalar_type() == at::kBFloat16, kOp,
              ": q must be float32, float16 or bfloat16, got ", q.scalar_type());
  check_unit_last_stride(q, "q");
  const int64_t B = q.size(0), sq = q.size(1), hq = q.size(2), d = q.size(3);
  TORCH_CHECK(d > 0 && d <= 256, kOp, ": the head dim D must be in [1, 256], got q of shape ", q.sizes());

  TORCH_CHECK(k_cache.dim() == 4, kOp, ": k_cache must be 4-D [B, S_max, Hkv, D] or paged [num_blocks, block_size, Hkv, D], got shape ",
              k_cache.sizes());
  check_twins(k_cache, "k_cache", v_cache, "v_cache");
  const bool int8 = k_cache.scalar_type() == at::kChar;
  TORCH_CHECK(int8 || k_cache.scalar_type() == q.scalar_type(), kOp, ": the caches must have q's dtype (",
              q.scalar_type(), ") or be int8, got ", k_cache.scalar_type());
  check_same_device(k_cache, "k_cache", q);
  check_same_device(v_cache, "v_cache", q);
  check_unit_last_stride(k_cache, "k_cache");
  const int64_t hkv = k_cache.size(2);
  TORCH_CHECK(k_cache.size(3) == d, kOp, ": the caches' head dim must be q's D = ", d, ", got k_cache of shape ",
              k_cache.sizes());
  TORCH_CHECK(hkv > 0 && hq % hkv == 0, kOp, ": q's heads Hq = ", hq, " must be a multiple of the caches' Hkv = ", hkv);

  KvAttentionParams p;
  p.b = B;
  p.sq = sq;
  p.hq = hq;
  p.hkv = hkv;
  p.d = d;
  p.causal = causal;
  p.softmax_scale = static_cast<float>(softmax_scale.has_value() ? *softmax_scale : 1.0 / std::sqrt(double(d)));
  TORCH_CHECK(std::isfinite(p.softmax_scale), kOp, ": softmax_scale must be finite, got ", p.softmax_scale);
  p.dtype = kernel_dtype(q, "q");
  p.cache_int8 = int8;
  p.q = q.data_ptr();
  p.q_batch_stride = q.stride(0);
  p.q_seq_stride = q.stride(1);
  p.q_head_stride = q.stride(2);
  p.k_cache = k_cache.data_ptr();
  p.v_cache = v_cache.data_ptr();
  p.cache_batch_stride = k_cache.stride(0);
  p.cache_seq_stride = k_cache.stride(1);
  p.cache_head_stride = k_cache.stride(2);

  TORCH_CHECK(cache_seqlens.scalar_type() == at::kInt && cache_seqlens.dim() == 1 && cache_seqlens.size(0) == B,
              kOp, ": cache_seqlens must be int32 [B] = [", B, "], got ", cache_seqlens.scalar_type(), " ",
              cache_seqlens.sizes());
  check_same_device(cache_seqlens, "cache_seqlens", q);
  TORCH_CHECK(cache_seqlens.is_contiguous(), kOp, ": cache_seqlens must be contiguous");
  p.cache_seqlens = cache_seqlens.data_ptr<int32_t>();

  if (block_table.has_value()) {
    const at::Tensor& bt = *block_table;
    TORCH_CHECK(bt.scalar_type() == at::kInt && bt.dim() == 2 && bt.size(0) == B, kOp,
                ": block_table must be int32 [B, max_blocks] with B = ", B, ", got ", bt.scalar_type(), " ", bt.sizes());
    check_same_device(bt, "block_table", q);
    check_unit_last_stride(bt, "block_table");
    TORCH_CHECK(bt.size(1) > 0 && k_cache.size(1) > 0, kOp, ": a paged cache needs max_blocks > 0 and block_size > 0, got block_table ",
                bt.sizes(), " and k_cache ", k_cache.sizes());
    p.block_table = bt.data_ptr<int32_t>();
    p.block_table_batch_stride = bt.stride(0);
    p.block_size = k_cache.size(1);
    p.s_max = bt.size(1) * k_cache.size(1);
  } else {
    TORCH_CHECK(k_cache.size(0) == B, kOp, ": the caches' batch must be q's B = ", B, ", got k_cache of shape ",
                k_cache.sizes(), " (a paged cache needs block_table)");
    p.s_max = k_cache.size(1);
  }

  TORCH_CHECK(k.has_value() == v.has_value(), kOp, ": give both k and v, or neither");
  if (k.has_value()) {
    check_twins(*k, "k", *v, "v");
    TORCH_CHECK(k->dim() == 4 && k->size(0) == B && k->size(1) == sq && k->size(2) == hkv && k->size(3) == d, kOp,
                ": k must be [B, Sq, Hkv, D] = [", B, ", ", sq, ", ", hkv, ", ", d, "], got ", k->sizes());
    TORCH_CHECK(k->scalar_type() == q.scalar_type(), kOp, ": k and v must have q's dtype (", q.scalar_type(),
                "), got ", k->scalar_type());
    check_same_device(*k, "k", q);
    check_same_device(*v, "v", q);
    check_unit_last_stride(*k, "k");
    TORCH_CHECK(sq <= p.s_max, kOp, ": cannot append Sq = ", sq, " tokens to a cache of ", p.s_max, " positions");
    p.k_new = k->data_ptr();
    p.v_new = v->data_ptr();
    p.new_batch_stride = k->stride(0);
    p.new_seq_stride = k->stride(1);
    p.new_head_stride = k->stride(2);
  }

  if (int8) {
    TORCH_CHECK(k_scale.has_value() && v_scale.has_value(), kOp,
                ": an int8 cache needs k_scale and v_scale (float32, the cache's shape without D)");
    check_twins(*k_scale, "k_scale", *v_scale, "v_scale");
    TORCH_CHECK(k_scale->scalar_type() == at::kFloat && k_scale->dim() == 3 && k_scale->size(0) == k_cache.size(0) &&
                    k_scale->size(1) == k_cache.size(1) && k_scale->size(2) == hkv,
                kOp, ": k_scale and v_scale must be float32 [", k_cache.size(0), ", ", k_cache.size(1), ", ", hkv,
                "] (the cache's shape without D), got ", k_scale->scalar_type(), " ", k_scale->sizes());
    check_same_device(*k_scale, "k_scale", q);
    check_same_device(*v_scale, "v_scale", q);
    check_unit_last_stride(*k_scale, "k_scale");
    p.k_scale = k_scale->data_ptr<float>();
    p.v_scale = v_scale->data_ptr<float>();
    p.scale_batch_stride = k_scale->stride(0);
    p.scale_seq_stride = k_scale->stride(1);
  } else {
    TORCH_CHECK(!k_scale.has_value() && !v_scale.has_value(), kOp,
                ": k_scale and v_scale are only for int8 caches (the caches are ", k_cache.scalar_type(), ")");
  }
  return p;
}

}  // namespace slimops
