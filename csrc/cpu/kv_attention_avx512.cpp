// AVX-512 KV attention: the inner loops of kv_attention_kernel.h 16 wide.
// On two cores the attention is bound by instructions (converting, dotting
// and accumulating every K and V row for each of its query rows), not by
// memory: twice the lanes per instruction is what pays. Compiled with the
// AVX-512 flags; call only when cpu_supports(kAvx512Vnni); d % 16 == 0.
#include "kv_attention_cpu.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)

#include "avx2_helpers.h"
#include "avx512_helpers.h"
#include "kv_attention_kernel.h"

namespace slimops::cpu {
namespace {

struct Avx512Ops {
  static void prefetch(const void* ptr, int64_t bytes) { avx2::prefetch_range(ptr, bytes); }
  static const float* load_row(const void* base, int64_t off, DType dt, int64_t d, float* buf) {
    if (dt == DType::kFloat32) return static_cast<const float*>(base) + off;
    const uint16_t* src = static_cast<const uint16_t*>(base) + off;
    for (int64_t c = 0; c < d; c += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + c));
      _mm512_storeu_ps(buf + c, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
    }
    return buf;
  }
  static const float* load_row_i8(const int8_t* src, int64_t d, float* buf) {
    for (int64_t c = 0; c < d; c += 16) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + c));
      _mm512_storeu_ps(buf + c, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)));
    }
    return buf;
  }
  // R query rows (R <= 4) against two keys, 16 lanes a step; the 8 sums are
  // folded to 256 bits and reduced together.
  template <int R>
  static void dot_rows(const float* q, int64_t d, const float* k0, const float* k1, float* out,
                          int64_t out_stride, int64_t nk) {
    __m512 acc[8];
    for (int a = 0; a < 8; ++a) acc[a] = _mm512_setzero_ps();
    for (int64_t c = 0; c < d; c += 16) {
      const __m512 x0 = _mm512_loadu_ps(k0 + c), x1 = _mm512_loadu_ps(k1 + c);
      for (int r = 0; r < R; ++r) {
        const __m512 qv = _mm512_loadu_ps(q + r * d + c);
        acc[2 * r] = _mm512_fmadd_ps(qv, x0, acc[2 * r]);
        acc[2 * r + 1] = _mm512_fmadd_ps(qv, x1, acc[2 * r + 1]);
      }
    }
    alignas(32) float sums[8];
    avx512::hsum8_f32x16(acc, sums);
    for (int r = 0; r < R; ++r) {
      for (int64_t u = 0; u < nk; ++u) out[r * out_stride + u] = sums[2 * r + u];
    }
  }
  static float exp_shift(const float* s, int64_t n, float max, float* out) {
    return avx2::exp_shift_f32(s, n, max, out);
  }
  static void scale_row(float* y, int64_t d, float a) { avx512::scale_f32x16(y, d, a); }
  template <int NV>
  static void axpy_rows(float* acc, int64_t rows, int64_t d, const float* coef, int64_t coef_stride,
                          const float* const* v) {
    for (int64_t r = 0; r < rows; ++r) {
      __m512 w[NV];
      for (int u = 0; u < NV; ++u) w[u] = _mm512_set1_ps(coef[r * coef_stride + u]);
      float* a = acc + r * d;
      for (int64_t c = 0; c < d; c += 16) {
        __m512 x = _mm512_loadu_ps(a + c);
        for (int u = 0; u < NV; ++u) x = _mm512_fmadd_ps(w[u], _mm512_loadu_ps(v[u] + c), x);
        _mm512_storeu_ps(a + c, x);
      }
    }
  }
};

}  // namespace

Status kv_attend_avx512(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch, KvPartial out) {
  if (p.d % 16 != 0 || p.dtype == DType::kFloat16) return Status::kUnsupported;
  return kv_detail::attend<Avx512Ops>(p, b, j0, j1, scratch, out);
}

}  // namespace slimops::cpu

#else  // the compiler cannot build AVX-512: never selected

namespace slimops::cpu {
Status kv_attend_avx512(const KvAttentionParams&, int64_t, int64_t, int64_t, float*, KvPartial) {
  return Status::kUnsupported;
}
}  // namespace slimops::cpu

#endif
