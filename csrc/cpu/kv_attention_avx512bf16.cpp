// AVX-512 BF16 KV attention for bf16 caches: vdpbf16ps multiplies pairs of
// bf16 values into float32 sums, so K and V rows are used as stored. The
// float path (kv_attention_avx512.cpp) converts every row to float32 first
// and then runs one FMA per 16 products; on two cores that made a bf16 cache
// no faster than a float32 one (bound by instructions, not by bytes).
//
// S = q . k: q stays in bf16 as given (unscaled: the softmax scale is
// applied to the float32 sums), so every product is exact and only the
// float32 accumulation rounds. P V: the weights are rounded to bf16 (as the
// CUDA kernel's P operand is) and paired over two keys, whose V rows are
// interleaved by unpacklo/hi_epi16; the accumulators therefore hold d in a
// permuted order within each 32-value chunk, undone at the end of the task.
//
// Compiled with the AVX-512 BF16 flags; call only when cpu_has_avx512_bf16().
#include "kv_attention_cpu.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)

#include <cstring>

#include "avx2_helpers.h"
#include "avx512_helpers.h"
#include "kv_attention_kernel.h"

namespace slimops::cpu {

bool avx512bf16_kernels_built() { return true; }

namespace {

// Positions prefetched ahead: the float path's bytes ahead (its rows are twice as long).
constexpr int64_t kBf16Prefetch = 2 * kv_detail::kPrefetchPositions;

inline __m512bh load_bh(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }

// What softmax_tile, dot_rows2 and the prefetch helper need.
struct Bf16Ops {
  static void prefetch(const void* ptr, int64_t bytes) { avx2::prefetch_range(ptr, bytes); }
  static float exp_shift(const float* s, int64_t n, float max, float* out) {
    return avx2::exp_shift_f32(s, n, max, out);
  }
  static void scale_row(float* y, int64_t d, float a) { avx512::scale_f32x16(y, d, a); }
  // out[r * out_stride + u] = q_r . k_u (float32 sums of exact bf16
  // products) for R <= 4 query rows and keys u < nk (k1 valid memory even
  // when nk = 1).
  template <int R>
  static void dot_rows(const uint16_t* q, int64_t d, const uint16_t* k0, const uint16_t* k1, float* out,
                       int64_t out_stride, int64_t nk) {
    __m512 acc[8];
    for (int a = 0; a < 8; ++a) acc[a] = _mm512_setzero_ps();
    for (int64_t c = 0; c < d; c += 32) {
      const __m512bh x0 = load_bh(k0 + c), x1 = load_bh(k1 + c);
      for (int r = 0; r < R; ++r) {
        const __m512bh qv = load_bh(q + r * d + c);
        acc[2 * r] = _mm512_dpbf16_ps(acc[2 * r], qv, x0);
        acc[2 * r + 1] = _mm512_dpbf16_ps(acc[2 * r + 1], qv, x1);
      }
    }
    alignas(32) float sums[8];
    avx512::hsum8_f32x16(acc, sums);
    for (int r = 0; r < R; ++r) {
      for (int64_t u = 0; u < nk; ++u) out[r * out_stride + u] = sums[2 * r + u];
    }
  }
};

// Rounds each row's weights w[0 .. n) of a scores tile to bf16 (nearest
// even), in place: row r's bf16 weights take the first half of its float
// row. Weights from n up to the next multiple of 4 become 0, so a partial
// group of four keys adds nothing for its missing keys.
void weights_to_bf16(float* scores, int64_t rows, int64_t n) {
  const int64_t n4 = (n + 3) / 4 * 4, n32 = (n4 + 31) / 32 * 32;  // n32 <= kKvTileKeys
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * kKvTileKeys;
    std::fill(s + n, s + n4, 0.f);
    uint16_t* w = reinterpret_cast<uint16_t*>(s);
    // Block j's floats (bytes 4j ..) are read before its bf16 (bytes 2j ..)
    // are written, and no write reaches a later block.
    for (int64_t j = 0; j < n32; j += 32) {
      const __m512 lo = _mm512_loadu_ps(s + j), hi = _mm512_loadu_ps(s + j + 16);
      _mm512_storeu_si512(w + j, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

// The bf16 weights of keys (j, j + 1) as a pair in every 32-bit lane.
inline __m512bh weight_pair(const uint16_t* w) {
  int32_t word;
  std::memcpy(&word, w, sizeof word);
  return (__m512bh)_mm512_set1_epi32(word);
}

// acc[r] += sum_u w[r][u] v_u over four keys (w: the bf16 weights of
// weights_to_bf16, row stride 2 * coef_stride; v[u] valid memory for every
// u). acc rows hold each 32-value chunk of d as [d = c + 8L + {0..3},
// L = 0..3 | d = c + 8L + {4..7}], the order unpacklo/hi_epi16 leave the
// interleaved pairs in.
void axpy4_rows_bf16(float* acc, int64_t rows, int64_t d, const uint16_t* w, int64_t w_stride,
                     const uint16_t* const* v) {
  for (int64_t c = 0; c < d; c += 32) {
    const __m512i v0 = _mm512_loadu_si512(v[0] + c), v1 = _mm512_loadu_si512(v[1] + c);
    const __m512i v2 = _mm512_loadu_si512(v[2] + c), v3 = _mm512_loadu_si512(v[3] + c);
    const __m512bh lo01 = (__m512bh)_mm512_unpacklo_epi16(v0, v1), hi01 = (__m512bh)_mm512_unpackhi_epi16(v0, v1);
    const __m512bh lo23 = (__m512bh)_mm512_unpacklo_epi16(v2, v3), hi23 = (__m512bh)_mm512_unpackhi_epi16(v2, v3);
    for (int64_t r = 0; r < rows; ++r) {
      const __m512bh w01 = weight_pair(w + r * w_stride), w23 = weight_pair(w + r * w_stride + 2);
      float* a = acc + r * d + c;
      __m512 lo = _mm512_loadu_ps(a), hi = _mm512_loadu_ps(a + 16);
      lo = _mm512_dpbf16_ps(_mm512_dpbf16_ps(lo, lo01, w01), lo23, w23);
      hi = _mm512_dpbf16_ps(_mm512_dpbf16_ps(hi, hi01, w01), hi23, w23);
      _mm512_storeu_ps(a, lo);
      _mm512_storeu_ps(a + 16, hi);
    }
  }
}

// Back to d order: the permutation axpy4_rows_bf16 documents, per chunk.
void unpermute_rows(float* acc, int64_t rows, int64_t d) {
  alignas(64) int32_t idx_lo[16], idx_hi[16];
  for (int n = 0; n < 32; ++n) {
    const int lane = (n / 8) * 4 + n % 4;
    (n < 16 ? idx_lo[n] : idx_hi[n - 16]) = n % 8 < 4 ? lane : 16 + lane;
  }
  const __m512i il = _mm512_load_si512(idx_lo), ih = _mm512_load_si512(idx_hi);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < d; c += 32) {
      float* a = acc + r * d + c;
      const __m512 lo = _mm512_loadu_ps(a), hi = _mm512_loadu_ps(a + 16);
      _mm512_storeu_ps(a, _mm512_permutex2var_ps(lo, il, hi));
      _mm512_storeu_ps(a + 16, _mm512_permutex2var_ps(lo, ih, hi));
    }
  }
}

}  // namespace

Status kv_attend_avx512bf16(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch,
                            KvPartial out) {
  if (p.dtype != DType::kBFloat16 || p.cache_int8 || p.d % 32 != 0) return Status::kUnsupported;
  using namespace kv_detail;
  const int64_t group = p.hq / p.hkv, rows = kv_rows(p), d = p.d;
  const int64_t head_rows = p.sq * group;
  // Scratch (kv_scratch_floats): the query rows as bf16 in the first
  // rows * d floats' room, then the scores tile.
  uint16_t* qb = reinterpret_cast<uint16_t*>(scratch);
  float* scores = scratch + rows * d;
  const uint16_t* q = static_cast<const uint16_t*>(p.q);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t off = b * p.q_batch_stride + kv_row_query(p, r) * p.q_seq_stride + kv_row_head(p, r) * p.q_head_stride;
    std::memcpy(qb + r * d, q + off, size_t(d) * sizeof(uint16_t));
    out.row_max[r] = -std::numeric_limits<float>::infinity();
    out.row_sum[r] = 0.f;
    std::fill(out.acc + r * d, out.acc + (r + 1) * d, 0.f);
  }
  const int64_t total = kv_total_keys(p, b);
  j1 = std::min(j1, last_visible_key(p, total, p.sq - 1) + 1);
  const int64_t pos_bytes = p.hkv * d * 2;
  const uint16_t* kc = static_cast<const uint16_t*>(p.k_cache);
  const uint16_t* vc = static_cast<const uint16_t*>(p.v_cache);
  for (int64_t t0 = j0; t0 < j1; t0 += kKvTileKeys) {
    const int64_t n = std::min(kKvTileKeys, j1 - t0);
    for (int64_t j = 0; j < n; j += 2) {
      const int64_t nk = std::min<int64_t>(2, n - j);
      prefetch_ahead<Bf16Ops>(p, p.k_cache, b, t0 + j, nk, j1, pos_bytes, kBf16Prefetch);
      for (int64_t h = 0; h < p.hkv; ++h) {
        const uint16_t* k0 = kc + cache_row_offset(p, b, t0 + j, h);
        const uint16_t* k1 = nk > 1 ? kc + cache_row_offset(p, b, t0 + j + 1, h) : k0;
        dot_rows2<Bf16Ops>(qb + h * head_rows * d, head_rows, d, k0, k1, scores + h * head_rows * kKvTileKeys + j,
                           kKvTileKeys, nk);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* s = scores + r * kKvTileKeys;
      for (int64_t j = 0; j < n; ++j) s[j] *= p.softmax_scale;
    }
    softmax_tile<Bf16Ops>(p, total, t0, n, scores, out);
    weights_to_bf16(scores, rows, n);
    const uint16_t* wb = reinterpret_cast<const uint16_t*>(scores);  // row stride 2 * kKvTileKeys
    for (int64_t j = 0; j < n; j += 4) {
      const int64_t nv = std::min<int64_t>(4, n - j);
      prefetch_ahead<Bf16Ops>(p, p.v_cache, b, t0 + j, nv, j1, pos_bytes, kBf16Prefetch);
      for (int64_t h = 0; h < p.hkv; ++h) {
        const uint16_t* v[4];
        for (int64_t u = 0; u < 4; ++u) v[u] = vc + cache_row_offset(p, b, t0 + j + std::min(u, nv - 1), h);
        axpy4_rows_bf16(out.acc + h * head_rows * d, head_rows, d, wb + h * head_rows * kKvTileKeys * 2 + j,
                        2 * kKvTileKeys, v);
      }
    }
  }
  unpermute_rows(out.acc, rows, d);
  return Status::kOk;
}

}  // namespace slimops::cpu

#else  // the compiler cannot build AVX-512 BF16: never selected

namespace slimops::cpu {
bool avx512bf16_kernels_built() { return false; }
Status kv_attend_avx512bf16(const KvAttentionParams&, int64_t, int64_t, int64_t, float*, KvPartial) {
  return Status::kUnsupported;
}
}  // namespace slimops::cpu

#endif
