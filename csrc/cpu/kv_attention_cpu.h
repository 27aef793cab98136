// CPU kernels of the fused KV-cache attention (KvAttentionParams).
//
// The work splits into tasks of (sequence b, key range): each task attends
// every query row of b over its key range, walking positions in order and
// reading all kv heads of each, so the cache streams sequentially (one
// task per head would read d elements every Hkv * d: a new page per row at
// fp32, which the hardware prefetchers do not follow). Each K and V row is
// read once for the whole group of query heads that share it. A task leaves
// an unnormalised partial (flash-decoding); kv_combine_cpu merges the
// partials of one sequence into the output. The bindings run tasks on
// at::parallel_for threads and append first (kv_append_cpu), so attention
// only ever reads the cache. Append is O(Sq) rows and needs no SIMD.
#pragma once

#include <cstdint>

#include "../common/kv_attention_params.h"
#include "../common/status.h"

namespace slimops::cpu {

// Keys one tile of scores covers; the scores of a task live in a
// [rows, kKvTileKeys] float buffer between its K and V passes.
constexpr int64_t kKvTileKeys = 256;

// The partial result of one task: acc [rows, d] = sum_j exp(s_j - row_max) v_j,
// row_max [rows] and row_sum [rows] = sum_j exp(s_j - row_max); row_max is
// -inf (and acc, row_sum zero) for a row that saw no key.
struct KvPartial {
  float* acc = nullptr;
  float* row_max = nullptr;
  float* row_sum = nullptr;
};

// Query rows of one sequence, ordered by kv head, then query position, then
// head within the group: row r = (h * sq + i) * group + g is query position
// i of query head h * group + g, so each kv head's rows are one block.
inline int64_t kv_rows(const KvAttentionParams& p) { return p.sq * p.hq; }
inline int64_t kv_row_query(const KvAttentionParams& p, int64_t r) { return (r / (p.hq / p.hkv)) % p.sq; }
inline int64_t kv_row_head(const KvAttentionParams& p, int64_t r) {
  const int64_t group = p.hq / p.hkv;
  return (r / (p.sq * group)) * group + r % group;
}

// Float scratch one task needs: the scaled float32 query rows, one tile of
// scores, and a converted K or V row.
inline int64_t kv_scratch_floats(const KvAttentionParams& p) {
  return kv_rows(p) * p.d + kv_rows(p) * kKvTileKeys + 4 * p.d;
}

// Keys of sequence b that the attention covers (cache plus the appended rows).
inline int64_t kv_total_keys(const KvAttentionParams& p, int64_t b) {
  return static_cast<int64_t>(p.cache_seqlens[b]) + (p.k_new != nullptr ? p.sq : 0);
}

// Writes the new k/v rows of sequence b, kv head h into the caches
// (int8: quantised, scales written). Scalar, any ISA.
Status kv_append_cpu(const KvAttentionParams& p, int64_t b, int64_t h);

// Attends over keys [j0, j1) of sequence b; scratch holds
// kv_scratch_floats(p) floats.
Status kv_attend_scalar(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch, KvPartial out);
// The same with AVX2/FMA/F16C (call only when cpu_supports(kAvx2)); needs d % 8 == 0.
Status kv_attend_avx2(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch, KvPartial out);
// The same 16 wide (call only when cpu_supports(kAvx512Vnni)); needs d % 16 == 0.
Status kv_attend_avx512(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch, KvPartial out);

// The same for bf16 caches (not int8) with vdpbf16ps, K and V rows used as
// stored; needs d % 32 == 0 and cpu_has_avx512_bf16(), else kUnsupported.
Status kv_attend_avx512bf16(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch,
                            KvPartial out);
bool avx512bf16_kernels_built();

// The output of sequence b from its nsplit partials.
Status kv_combine_cpu(const KvAttentionParams& p, int64_t b, const KvPartial* parts, int64_t nsplit);

}  // namespace slimops::cpu
