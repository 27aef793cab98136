// AVX2 / AVX-VNNI operations of the panel GEMM (wo_gemm_i16_panel.h): panels
// of 2 ymm (16 columns), 6 x 2 register tiles (12 accumulators + 2 panel
// registers + 1 broadcast + 1 product of the 16). Include only from sources
// compiled with AVX2/FMA flags (and -mavxvnni for kVnni).
#pragma once

#include <immintrin.h>

#include "wo_gemm_i16_kernel.h"

namespace slimops::cpu::i16 {
namespace {

template <bool kVnni>
struct PanelOps256 {
  using VI = __m256i;
  using Mask = __m256i;  // all-ones lanes are stored
  static constexpr int kLanes = 8, kVecs = 2, kCols = kLanes * kVecs, kRowsOfX = 6;

  static VI zero() { return _mm256_setzero_si256(); }
  static VI load(const int32_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
  static VI bcast(int32_t v) { return _mm256_set1_epi32(v); }
  static void dot(VI& acc, VI w, VI x) {
#if defined(__AVXVNNI__)
    if constexpr (kVnni) {
      // Inline asm for the same reason as PanelOps512::dot.
      asm("%{vex%} vpdpwssd %2, %1, %0" : "+x"(acc) : "x"(w), "x"(x));
      return;
    }
#endif
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(w, x));
  }
  static Mask tail_mask(int live) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(live), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static void flush(VI acc, float sx, const float* ws, float* o, Mask m) {
    const __m256 s = _mm256_mul_ps(_mm256_load_ps(ws), _mm256_set1_ps(sx));
    const __m256 prev = _mm256_maskload_ps(o, m);
    _mm256_maskstore_ps(o, m, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, prev));
  }

  // 8 columns x 32 k -> 16 panel rows (see PanelOps512::pack_unit).
  template <int kBits>
  static void pack_unit(const uint8_t* w, int64_t row_bytes, int live, int32_t* dst, int64_t dst_stride) {
    __m256i lo[8], hi[8];  // k 0-15 and 16-31 of each column, as 8 int16 pairs
    for (int c = 0; c < 8; ++c) {
      if (c < live) {
        const auto b = Avx2Ops<kVnni>::template load_w<kBits>(w + c * row_bytes);
        lo[c] = b.lo, hi[c] = b.hi;
      } else {
        lo[c] = hi[c] = _mm256_setzero_si256();
      }
    }
    transpose_8x8(lo);
    transpose_8x8(hi);
    for (int kp = 0; kp < 8; ++kp) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + kp * dst_stride), lo[kp]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + (8 + kp) * dst_stride), hi[kp]);
    }
  }

  // In-register transpose of 8 x 8 int32: r[i] lane j -> r[j] lane i.
  static void transpose_8x8(__m256i r[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4h + e], 128-bit lane L: element 4L + e of rows 4h .. 4h + 3.
    for (int h = 0; h < 2; ++h) {
      u[4 * h] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
      u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
      u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
      u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    for (int e = 0; e < 4; ++e) {
      r[e] = _mm256_permute2x128_si256(u[e], u[4 + e], 0x20);
      r[4 + e] = _mm256_permute2x128_si256(u[e], u[4 + e], 0x31);
    }
  }
};

}  // namespace
}  // namespace slimops::cpu::i16
