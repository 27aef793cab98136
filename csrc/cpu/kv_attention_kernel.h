// The CPU KV-attention task (see kv_attention_cpu.h), written once over a
// vector-ops trait so the scalar, AVX2 and AVX-512 builds share the
// algorithm and differ only in the inner loops. Include only from
// kv_attention_scalar.cpp, kv_attention_avx2.cpp and kv_attention_avx512.cpp.
//
// Per tile of kKvTileKeys keys: one pass over K fills a [rows, tile] score
// buffer (each K row converted once, dotted with every query row of the
// group), an online-softmax step rescales the running sums, and one pass
// over V accumulates every row. K and V are each read once per task; the
// query rows, scores and accumulators stay in L1/L2.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "bf16_convert.h"
#include "kv_attention_cpu.h"

namespace slimops::cpu::kv_detail {

// Element offset of (position, kv head) in a cache laid out as p describes,
// and of its scale.
inline int64_t cache_row_offset(const KvAttentionParams& p, int64_t b, int64_t pos, int64_t h) {
  if (p.block_table == nullptr) return b * p.cache_batch_stride + pos * p.cache_seq_stride + h * p.cache_head_stride;
  const int64_t block = p.block_table[b * p.block_table_batch_stride + pos / p.block_size];
  return block * p.cache_batch_stride + (pos % p.block_size) * p.cache_seq_stride + h * p.cache_head_stride;
}
inline int64_t scale_offset(const KvAttentionParams& p, int64_t b, int64_t pos, int64_t h) {
  if (p.block_table == nullptr) return b * p.scale_batch_stride + pos * p.scale_seq_stride + h;
  const int64_t block = p.block_table[b * p.block_table_batch_stride + pos / p.block_size];
  return block * p.scale_batch_stride + (pos % p.block_size) * p.scale_seq_stride + h;
}

// Last key query position i may see: bottom-right causal alignment.
inline int64_t last_visible_key(const KvAttentionParams& p, int64_t total, int64_t i) {
  return p.causal ? total - p.sq + i : total - 1;
}

// Positions to prefetch ahead of use. A task walks positions in order and
// reads every kv head of each, so its reads are one sequential stream where
// the heads of a position are adjacent (the usual [.., S, Hkv, D] layout);
// the hint covers the page and block breaks the hardware prefetcher stops at.
constexpr int64_t kPrefetchPositions = 4;

template <typename Ops>
inline void prefetch_position(const KvAttentionParams& p, const void* cache, int64_t b, int64_t pos, int64_t bytes) {
  if (p.cache_head_stride != p.d) return;  // heads not adjacent: leave it to the hardware
  const int64_t elem = p.cache_int8 ? 1 : (p.dtype == DType::kFloat32 ? 4 : 2);
  Ops::prefetch(static_cast<const char*>(cache) + cache_row_offset(p, b, pos, 0) * elem, bytes);
}

// Prefetches positions pos + u + ahead (u < count) that lie before end.
template <typename Ops>
inline void prefetch_ahead(const KvAttentionParams& p, const void* cache, int64_t b, int64_t pos, int64_t count,
                           int64_t end, int64_t bytes, int64_t ahead) {
  for (int64_t u = 0; u < count; ++u) {
    if (pos + u + ahead < end) prefetch_position<Ops>(p, cache, b, pos + u + ahead, bytes);
  }
}

constexpr int64_t kKeysPerDot = 2;
constexpr int64_t kKeysPerAxpy = 4;

// The cache row (position pos, kv head h) of sequence b as float32: the
// cache itself for float32 caches, else converted into buf (int8 rows
// unscaled: the scale is applied to the scores / weights instead).
template <typename Ops>
inline const float* load_cache_row(const KvAttentionParams& p, const void* cache, int64_t b, int64_t pos, int64_t h,
                                   float* buf) {
  const int64_t off = cache_row_offset(p, b, pos, h);
  if (p.cache_int8) return Ops::load_row_i8(static_cast<const int8_t*>(cache) + off, p.d, buf);
  return Ops::load_row(cache, off, p.dtype, p.d, buf);
}

// Ops provides:
//   prefetch(ptr, bytes): hint that [ptr, ptr + bytes) is read soon;
//   load_row(base, off, dtype, d, buf) -> const float*: the row at base + off
//     as float32 (the source itself for float32, else converted into buf);
//   load_row_i8(src, d, buf) -> const float*: an int8 row as float32;
//   dot_rows<R>(q, d, k0, k1, out, out_stride, nk): out[r * out_stride + u] = q[r] . k_u (float rows here;
//     the bf16 kernel's ops take bf16 rows)
//     for r < R <= 4 and u < nk (nk 1 or 2; k1 is valid memory even when nk = 1);
//   exp_shift(s, n, max, p) -> sum: p[j] = exp(s[j] - max), returns sum p;
//   scale_row(y, d, a): y *= a;
//   axpy_rows<NV>(acc, rows, d, coef, coef_stride, v): acc[r] += sum_u coef[r * coef_stride + u] * v[u]
//     for u < NV (1 to 4).
// The two helpers below cut rows and values into those compile-time counts.
template <typename Ops, typename T>
inline void dot_rows2(const T* q, int64_t rows, int64_t d, const T* k0, const T* k1, float* out, int64_t out_stride,
                      int64_t nk) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) Ops::template dot_rows<4>(q + r * d, d, k0, k1, out + r * out_stride, out_stride, nk);
  switch (rows - r) {
    case 3: Ops::template dot_rows<3>(q + r * d, d, k0, k1, out + r * out_stride, out_stride, nk); break;
    case 2: Ops::template dot_rows<2>(q + r * d, d, k0, k1, out + r * out_stride, out_stride, nk); break;
    case 1: Ops::template dot_rows<1>(q + r * d, d, k0, k1, out + r * out_stride, out_stride, nk); break;
    default: break;
  }
}

template <typename Ops>
inline void axpy_rows(float* acc, int64_t rows, int64_t d, const float* coef, int64_t coef_stride,
                      const float* const* v, int64_t nv) {
  switch (nv) {
    case 4: Ops::template axpy_rows<4>(acc, rows, d, coef, coef_stride, v); break;
    case 3: Ops::template axpy_rows<3>(acc, rows, d, coef, coef_stride, v); break;
    case 2: Ops::template axpy_rows<2>(acc, rows, d, coef, coef_stride, v); break;
    default: Ops::template axpy_rows<1>(acc, rows, d, coef, coef_stride, v); break;
  }
}

// max(s[0 .. n)), n >= 1, over eight independent running maxima: one chain
// of dependent maxss was 12% of a bf16 task's time.
inline float max_of(const float* s, int64_t n) {
  float m[8];
  std::fill(m, m + 8, s[0]);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int k = 0; k < 8; ++k) m[k] = std::max(m[k], s[j + k]);
  }
  for (; j < n; ++j) m[0] = std::max(m[0], s[j]);
  return *std::max_element(m, m + 8);
}

// Online softmax over one tile of scores [rows, kKvTileKeys] (keys t0 ..
// t0 + n - 1 of a sequence of `total`): each row's visible prefix becomes
// weights exp(s - new max), the rest 0; the row's running max and sum are
// updated and its accumulator rescaled (element-wise, so any layout of acc).
template <typename Ops>
inline void softmax_tile(const KvAttentionParams& p, int64_t total, int64_t t0, int64_t n, float* scores,
                         KvPartial out) {
  const int64_t d = p.d;
  for (int64_t r = 0; r < kv_rows(p); ++r) {
    float* s = scores + r * kKvTileKeys;
    const int64_t visible = std::clamp<int64_t>(last_visible_key(p, total, kv_row_query(p, r)) + 1 - t0, 0, n);
    if (visible == 0) {
      std::fill(s, s + n, 0.f);
      continue;
    }
    const float tile_max = max_of(s, visible);
    const float new_max = std::max(out.row_max[r], tile_max);
    const float correction = std::exp(out.row_max[r] - new_max);  // exp(-inf) = 0 on the first tile
    out.row_sum[r] = out.row_sum[r] * correction + Ops::exp_shift(s, visible, new_max, s);
    std::fill(s + visible, s + n, 0.f);
    if (correction != 1.f) Ops::scale_row(out.acc + r * d, d, correction);
    out.row_max[r] = new_max;
  }
}

template <typename Ops>
Status attend(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch, KvPartial out) {
  const int64_t group = p.hq / p.hkv, rows = kv_rows(p), d = p.d;
  const int64_t head_rows = p.sq * group;           // rows of one kv head
  float* qf = scratch;                              // [rows, d], pre-scaled
  float* scores = qf + rows * d;                    // [rows, kKvTileKeys]
  float* row_buf = scores + rows * kKvTileKeys;     // [kKeysPerAxpy, d]
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = kv_row_query(p, r), head = kv_row_head(p, r);
    const int64_t off = b * p.q_batch_stride + i * p.q_seq_stride + head * p.q_head_stride;
    const float* src = Ops::load_row(p.q, off, p.dtype, d, row_buf);
    for (int64_t c = 0; c < d; ++c) qf[r * d + c] = src[c] * p.softmax_scale;
    out.row_max[r] = -std::numeric_limits<float>::infinity();
    out.row_sum[r] = 0.f;
    std::fill(out.acc + r * d, out.acc + (r + 1) * d, 0.f);
  }
  const int64_t total = kv_total_keys(p, b);
  // No key beyond the last one the last query may see matters.
  j1 = std::min(j1, last_visible_key(p, total, p.sq - 1) + 1);
  const int64_t pos_bytes = p.hkv * d * (p.cache_int8 ? 1 : (p.dtype == DType::kFloat32 ? 4 : 2));
  for (int64_t t0 = j0; t0 < j1; t0 += kKvTileKeys) {
    const int64_t n = std::min(kKvTileKeys, j1 - t0);
    // Keys two at a time: each piece of the query rows loaded meets two K
    // rows, halving the L1 traffic per multiply-add.
    for (int64_t j = 0; j < n; j += kKeysPerDot) {
      const int64_t nk = std::min(kKeysPerDot, n - j);
      prefetch_ahead<Ops>(p, p.k_cache, b, t0 + j, nk, j1, pos_bytes, kPrefetchPositions);
      for (int64_t h = 0; h < p.hkv; ++h) {
        const float* k[kKeysPerDot];
        for (int64_t u = 0; u < kKeysPerDot; ++u)
          k[u] = load_cache_row<Ops>(p, p.k_cache, b, t0 + j + std::min(u, nk - 1), h, row_buf + u * d);
        float* s = scores + h * head_rows * kKvTileKeys + j;
        dot_rows2<Ops>(qf + h * head_rows * d, head_rows, d, k[0], k[1], s, kKvTileKeys, nk);
        if (p.cache_int8) {
          for (int64_t u = 0; u < nk; ++u) {
            const float ks = p.k_scale[scale_offset(p, b, t0 + j + u, h)];
            for (int64_t r = 0; r < head_rows; ++r) s[r * kKvTileKeys + u] *= ks;
          }
        }
      }
    }
    softmax_tile<Ops>(p, total, t0, n, scores, out);
    // Values four at a time: each accumulator loaded and stored takes four
    // multiply-adds.
    for (int64_t j = 0; j < n; j += kKeysPerAxpy) {
      const int64_t nv = std::min(kKeysPerAxpy, n - j);
      prefetch_ahead<Ops>(p, p.v_cache, b, t0 + j, nv, j1, pos_bytes, kPrefetchPositions);
      for (int64_t h = 0; h < p.hkv; ++h) {
        const float* v[kKeysPerAxpy];
        for (int64_t u = 0; u < nv; ++u) v[u] = load_cache_row<Ops>(p, p.v_cache, b, t0 + j + u, h, row_buf + u * d);
        float* s = scores + h * head_rows * kKvTileKeys + j;
        if (p.cache_int8) {
          for (int64_t u = 0; u < nv; ++u) {
            const float vs = p.v_scale[scale_offset(p, b, t0 + j + u, h)];
            for (int64_t r = 0; r < head_rows; ++r) s[r * kKvTileKeys + u] *= vs;
          }
        }
        axpy_rows<Ops>(out.acc + h * head_rows * d, head_rows, d, s, kKvTileKeys, v, nv);
      }
    }
  }
  return Status::kOk;
}

}  // namespace slimops::cpu::kv_detail
