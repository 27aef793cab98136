// Named AVX2 building blocks (the llama.cpp habit): kernels read as what they
// do, not as intrinsic soup. Include only from sources compiled with
// -mavx2 -mfma -mf16c.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace slimops::cpu::avx2 {

// Hints that [ptr, ptr + bytes) is read soon, one 64-byte line at a time
// (SSE's prefetcht0: any of the x86 kernels may use it).
static inline void prefetch_range(const void* ptr, int64_t bytes) {
  const char* c = static_cast<const char*>(ptr);
  for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

// 8 consecutive int8 values widened to 8 floats.
static inline __m256 load_i8x8_as_f32(const int8_t* p) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
}

// Sum of the 8 lanes.
static inline float hsum_f32x8(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 shuf = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, shuf);
  shuf = _mm_movehl_ps(shuf, sums);
  sums = _mm_add_ss(sums, shuf);
  return _mm_cvtss_f32(sums);
}

// The 8 lane sums of a[0..7] as one vector (lane i = sum of a[i]): three
// rounds of horizontal adds instead of eight separate reductions.
static inline __m256 hsum8_f32x8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
  // u0 = [a0..a3 low halves | a0..a3 high halves], u1 likewise for a4..a7.
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// exp of 8 floats, relative error ~2 ulp (Cephes expf polynomial): inputs
// are clamped to [-87.3, 88.3], so very negative ones give ~1e-38, not 0.
static inline __m256 exp_f32x8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  // x = n ln2 + r, |r| <= ln2 / 2; ln2 split in two so r keeps its low bits.
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 poly = _mm256_set1_ps(1.9875691500e-4f);
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(1.3981999507e-3f));
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(8.3334519073e-3f));
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(4.1665795894e-2f));
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(1.6666665459e-1f));
  poly = _mm256_fmadd_ps(poly, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 e_r = _mm256_add_ps(_mm256_fmadd_ps(poly, r2, r), _mm256_set1_ps(1.f));
  // 2^n built in the exponent field.
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(e_r, _mm256_castsi256_ps(pow2n));
}

// out[j] = exp(s[j] - max) for j < n, returning their sum (the softmax
// numerators of one row; n need not be a multiple of 8).
static inline float exp_shift_f32(const float* s, int64_t n, float max, float* out) {
  const __m256 m = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp_f32x8(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
    _mm256_storeu_ps(out + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum_f32x8(sum);
  if (j < n) {
    alignas(32) float tail[8];
    for (int t = 0; t < 8; ++t) tail[t] = j + t < n ? s[j + t] - max : -87.3f;
    _mm256_store_ps(tail, exp_f32x8(_mm256_load_ps(tail)));
    for (int64_t t = 0; j + t < n; ++t) total += (out[j + t] = tail[t]);
  }
  return total;
}

// 8 bfloat16 values widened to 8 floats (exact: bf16 is float32's top half).
static inline __m256 load_bf16x8_as_f32(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

}  // namespace slimops::cpu::avx2
