// AVX2 KV attention: the inner loops of kv_attention_kernel.h with 8-wide
// FMAs. Compiled with -mavx2 -mfma -mf16c; d % 8 == 0 (the bindings check).
// Memory-bound by design: every K and V row is loaded once per task, and
// everything it meets (query rows, scores, accumulators) is in L1/L2.
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "avx2_helpers.h"
#include "kv_attention_kernel.h"

namespace slimops::cpu {
namespace {

using avx2::hsum8_f32x8;
using avx2::load_bf16x8_as_f32;
using avx2::load_i8x8_as_f32;

struct Avx2Ops {
  static void prefetch(const void* ptr, int64_t bytes) { avx2::prefetch_range(ptr, bytes); }
  static const float* load_row(const void* base, int64_t off, DType dt, int64_t d, float* buf) {
    if (dt == DType::kFloat32) return static_cast<const float*>(base) + off;
    const uint16_t* src = static_cast<const uint16_t*>(base) + off;
    for (int64_t c = 0; c < d; c += 8) _mm256_storeu_ps(buf + c, load_bf16x8_as_f32(src + c));
    return buf;
  }
  static const float* load_row_i8(const int8_t* src, int64_t d, float* buf) {
    for (int64_t c = 0; c < d; c += 8) _mm256_storeu_ps(buf + c, load_i8x8_as_f32(src + c));
    return buf;
  }
  // R query rows (R <= 4) against two keys: each 8-wide piece of a query
  // row is loaded once for both keys, each piece of a key once for all R rows.
  template <int R>
  static void dot_rows(const float* q, int64_t d, const float* k0, const float* k1, float* out,
                          int64_t out_stride, int64_t nk) {
    __m256 acc[8];
    for (int a = 0; a < 8; ++a) acc[a] = _mm256_setzero_ps();
    for (int64_t c = 0; c < d; c += 8) {
      const __m256 x0 = _mm256_loadu_ps(k0 + c), x1 = _mm256_loadu_ps(k1 + c);
      for (int r = 0; r < R; ++r) {
        const __m256 qv = _mm256_loadu_ps(q + r * d + c);
        acc[2 * r] = _mm256_fmadd_ps(qv, x0, acc[2 * r]);
        acc[2 * r + 1] = _mm256_fmadd_ps(qv, x1, acc[2 * r + 1]);
      }
    }
    alignas(32) float sums[8];
    _mm256_store_ps(sums, hsum8_f32x8(acc));
    for (int r = 0; r < R; ++r) {
      for (int64_t u = 0; u < nk; ++u) out[r * out_stride + u] = sums[2 * r + u];
    }
  }
  static float exp_shift(const float* s, int64_t n, float max, float* out) {
    return avx2::exp_shift_f32(s, n, max, out);
  }
  static void scale_row(float* y, int64_t d, float a) {
    const __m256 av = _mm256_set1_ps(a);
    for (int64_t c = 0; c < d; c += 8) _mm256_storeu_ps(y + c, _mm256_mul_ps(_mm256_loadu_ps(y + c), av));
  }
  // acc[r] += sum_u coef[r, u] v[u]: each accumulator piece is loaded and
  // stored once for up to four values rows (which stay in L1 across rows).
  template <int NV>
  static void axpy_rows(float* acc, int64_t rows, int64_t d, const float* coef, int64_t coef_stride,
                          const float* const* v) {
    for (int64_t r = 0; r < rows; ++r) {
      __m256 w[NV];
      for (int u = 0; u < NV; ++u) w[u] = _mm256_set1_ps(coef[r * coef_stride + u]);
      float* a = acc + r * d;
      for (int64_t c = 0; c < d; c += 8) {
        __m256 x = _mm256_loadu_ps(a + c);
        for (int u = 0; u < NV; ++u) x = _mm256_fmadd_ps(w[u], _mm256_loadu_ps(v[u] + c), x);
        _mm256_storeu_ps(a + c, x);
      }
    }
  }
};

}  // namespace

Status kv_attend_avx2(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch, KvPartial out) {
  if (p.d % 8 != 0 || p.dtype == DType::kFloat16) return Status::kUnsupported;
  return kv_detail::attend<Avx2Ops>(p, b, j0, j1, scratch, out);
}

}  // namespace slimops::cpu

#endif
