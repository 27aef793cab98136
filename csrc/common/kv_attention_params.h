// Parameters of the fused KV-cache attention (append + attend):
//
//   for each sequence b, query position i < sq, query head h:
//     t_b   = cache_seqlens[b] + sq            (keys visible to the last query)
//     if k_new: cache[b, cache_seqlens[b] + j] = k_new[b, j]  (j < sq; same for v)
//     out[b, i, h] = softmax_j(scale * q[b, i, h] . K[b, j, h / group]) V[b, j, h / group]
//     over j < t_b - sq + i + 1 when causal (bottom-right aligned), j < t_b otherwise,
//     where group = hq / hkv (GQA / MQA).
//
// One struct for every backend (as WoGemmParams): the bindings fill it after
// checking the tensors, so kernels may trust every field. Strides are in
// elements; the last (head-dim) stride of every tensor is 1.
#pragma once

#include <cstdint>

#include "dtype.h"

namespace slimops {

struct KvAttentionParams {
  // q [b, sq, hq, d] of element type dtype.
  const void* q = nullptr;
  int64_t q_batch_stride = 0, q_seq_stride = 0, q_head_stride = 0;

  // Caches, written in place on append. Contiguous: [b, s_max, hkv, d], and
  // cache_batch_stride steps between sequences. Paged (block_table set):
  // [num_blocks, block_size, hkv, d], and cache_batch_stride steps between
  // blocks; position p of sequence b lives in block block_table[b, p / block_size]
  // at row p % block_size. Element type: dtype, or int8 when cache_int8.
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  int64_t cache_batch_stride = 0, cache_seq_stride = 0, cache_head_stride = 0;

  // int8 caches only: per-(position, kv head) float32 scales, laid out like
  // the cache without the head dim: [b, s_max, hkv] or [num_blocks, block_size, hkv],
  // with their own strides. value = scale * int8. On append the kernel
  // quantises each new (position, head) row of d values x, computed in
  // float32: scale = max|x| / 127, int8 = round-half-even(x / scale) clamped
  // to [-127, 127]; an all-zero row stores scale 0 and int8 0. Attention over
  // the new rows uses these quantised values, as later calls will.
  float* k_scale = nullptr;
  float* v_scale = nullptr;
  int64_t scale_batch_stride = 0, scale_seq_stride = 0;  // head stride is 1

  // Optional new keys/values [b, sq, hkv, d] of element type dtype, written
  // into the cache at positions cache_seqlens[b] .. cache_seqlens[b] + sq - 1
  // and attended to in the same call. Both null or both set.
  const void* k_new = nullptr;
  const void* v_new = nullptr;
  int64_t new_batch_stride = 0, new_seq_stride = 0, new_head_stride = 0;

  // [b] int32: tokens already in each sequence's cache (before this append).
  // The bindings cannot check device values; kernels may assume
  // 0 <= cache_seqlens[b] and cache_seqlens[b] + (k_new ? sq : 0) <= s_max.
  // Without k_new the keys attended are positions < cache_seqlens[b] and the
  // query i sees j <= cache_seqlens[b] - sq + i when causal. A query that
  // sees no key at all (possible then, or with cache_seqlens[b] = 0 and no
  // append) gets an all-zero output row.
  const int32_t* cache_seqlens = nullptr;

  // Paged caches: block_table [b, max_blocks] int32 with row stride
  // block_table_batch_stride; nullptr for contiguous caches.
  const int32_t* block_table = nullptr;
  int64_t block_table_batch_stride = 0;
  int64_t block_size = 0;

  // out [b, sq, hq, d] of element type dtype.
  void* out = nullptr;
  int64_t out_batch_stride = 0, out_seq_stride = 0, out_head_stride = 0;

  int64_t b = 0, sq = 0, hq = 0, hkv = 0, d = 0;
  // Capacity of one sequence in positions: s_max of the contiguous cache, or
  // max_blocks * block_size when paged.
  int64_t s_max = 0;
  float softmax_scale = 0.f;
  bool causal = true;
  DType dtype = DType::kFloat32;  // q, k_new, v_new, out, and the cache unless int8
  bool cache_int8 = false;
  // KV splits of the CUDA split-KV kernel: 0 lets the launcher choose (the
  // default); a positive count forces it (clamped to the kernel's range), for
  // experiments that calibrate the choice. CPU ignores it.
  int num_splits = 0;
};

}  // namespace slimops
