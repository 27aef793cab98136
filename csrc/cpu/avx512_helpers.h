// Named AVX-512 helpers shared by the AVX-512 kernels. Include only from
// translation units compiled with the AVX-512 flags.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "avx2_helpers.h"

namespace slimops::cpu::avx512 {

// 16 bfloat16 values widened to 16 floats (exact: bf16 is float32's top half).
static inline __m512 load_bf16x16_as_f32(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// sums[i] = the sum of acc[i]'s 16 lanes, i < 8: each folded to 256 bits,
// then the eight reduced together (sums 32-byte aligned).
static inline void hsum8_f32x16(const __m512* acc, float* sums) {
  __m256 half[8];
  for (int a = 0; a < 8; ++a)
    half[a] = _mm256_add_ps(_mm512_castps512_ps256(acc[a]),
                            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[a]), 1)));
  _mm256_store_ps(sums, avx2::hsum8_f32x8(half));
}

// y[0 .. d) *= a, d % 16 == 0.
static inline void scale_f32x16(float* y, int64_t d, float a) {
  const __m512 av = _mm512_set1_ps(a);
  for (int64_t c = 0; c < d; c += 16) _mm512_storeu_ps(y + c, _mm512_mul_ps(_mm512_loadu_ps(y + c), av));
}

}  // namespace slimops::cpu::avx512
