// AVX-512 VNNI operations of the panel GEMM (wo_gemm_i16_panel.h): panels of
// 3 zmm (48 columns), 8 x 3 register tiles (24 accumulators + 3 panel
// registers + 1 broadcast of the 32). Include only from sources compiled
// with AVX-512 F/BW/VNNI flags.
#pragma once

#include <immintrin.h>

#include "wo_gemm_i16_kernel.h"

namespace slimops::cpu::i16 {
namespace {

struct PanelOps512 {
  using VI = __m512i;
  using Mask = __mmask16;
  static constexpr int kLanes = 16, kVecs = 3, kCols = kLanes * kVecs, kRowsOfX = 8;

  static VI zero() { return _mm512_setzero_si512(); }
  static VI load(const int32_t* p) { return _mm512_load_si512(p); }
  static VI bcast(int32_t v) { return _mm512_set1_epi32(v); }
  // acc += pairwise int16 products. Inline asm: with the builtin, GCC 12
  // copies every accumulator of the 8 x 3 tile through a second register
  // (or the stack) each iteration instead of updating it in place.
  static void dot(VI& acc, VI w, VI x) { asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x)); }
  static Mask tail_mask(int live) { return static_cast<Mask>((1u << live) - 1u); }
  // o[lanes in m] += float(acc) * ws * sx
  static void flush(VI acc, float sx, const float* ws, float* o, Mask m) {
    const __m512 s = _mm512_mul_ps(_mm512_load_ps(ws), _mm512_set1_ps(sx));
    const __m512 prev = _mm512_maskz_loadu_ps(m, o);
    _mm512_mask_storeu_ps(o, m, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, prev));
  }

  // 16 columns x 32 k (one int8/int4 block each, rows row_bytes apart; the
  // first `live` real, the rest zero) -> 16 panel rows (k-pairs), dst_stride
  // int32 apart.
  template <int kBits>
  static void pack_unit(const uint8_t* w, int64_t row_bytes, int live, int32_t* dst, int64_t dst_stride) {
    __m512i r[16];
    for (int c = 0; c < 16; ++c)
      r[c] = c < live ? Avx512Ops::load_w<kBits>(w + c * row_bytes).v : _mm512_setzero_si512();
    transpose_16x16(r);
    for (int kp = 0; kp < 16; ++kp) _mm512_store_si512(dst + kp * dst_stride, r[kp]);
  }

  // In-register transpose of 16 x 16 int32: r[i] lane j -> r[j] lane i.
  static void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + e], 128-bit lane L: element 4L + e of rows 4i .. 4i + 3.
    for (int i = 0; i < 4; ++i) {
      u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
      u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
      u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
      u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // Gather lane L of u[e], u[4 + e], u[8 + e], u[12 + e] into r[4L + e].
    for (int e = 0; e < 4; ++e) {
      const __m512i p0 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44);
      const __m512i p1 = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
      const __m512i q0 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44);
      const __m512i q1 = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
      r[e] = _mm512_shuffle_i32x4(p0, q0, 0x88);
      r[4 + e] = _mm512_shuffle_i32x4(p0, q0, 0xDD);
      r[8 + e] = _mm512_shuffle_i32x4(p1, q1, 0x88);
      r[12 + e] = _mm512_shuffle_i32x4(p1, q1, 0xDD);
    }
  }
};

}  // namespace
}  // namespace slimops::cpu::i16
