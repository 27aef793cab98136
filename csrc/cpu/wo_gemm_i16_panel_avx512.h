// Panel GEMM for the integer path on AVX-512 VNNI, used from M =
// avx512_panel_min_m(bits) (wo_gemm_cpu.h):
// the weights are unpacked and transposed once per (48 columns x kPanelK)
// into an L1-resident panel, then every 8 rows of x run over it.
//
// Why: the row tiles of wo_gemm_i16_kernel.h dot a weight row with an x row
// (K along the vector), so every 32 weights x MT rows cost a float
// conversion, a scale and an FMA per tile entry, and every tile re-unpacks
// its weights. Here N runs along the vector instead: a panel register holds
// one k-pair for 16 output columns, each x row broadcasts its k-pair, and
// one vpdpwssd updates 16 outputs. An 8 x 48 tile (24 accumulators) does 24
// multiply-adds per 3 panel loads and 8 broadcasts, and converts to float
// only once per x block (up to 128 k). The transposes that build the panel
// run on port 5 beside the multiply-adds and are shared by all M rows.
// Include only from sources compiled with AVX-512 F/BW/VNNI flags.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "wo_gemm_i16_kernel.h"

namespace slimops::cpu::i16 {
namespace {

constexpr int kPanelCols = 48;        // 3 zmm of 16 int32 lanes
constexpr int kPanelVecs = kPanelCols / 16;
constexpr int64_t kPanelK = 256;      // 128 k-pairs x 48 columns x 4 B = 24 KiB
constexpr int kPanelRowsOfX = 8;      // 8 x 3 accumulators + 3 panel + 1 broadcast

// The weights of one panel: pairs[kp][c] holds weights k = 2kp, 2kp+1 of
// column c as two int16 (the operand layout of vpdpwssd), and the weight
// scales of the chunk's groups per column.
struct Panel {
  alignas(64) int32_t pairs[kPanelK / 2][kPanelCols];
  alignas(64) float scales[kPanelK / kXBlock][kPanelCols];  // per x block of the chunk
};

// acc += pairwise int16 products of w and x. Inline asm: with the builtin,
// GCC 12 copies every accumulator of a large tile through a second register
// (or the stack) each iteration instead of updating it in place.
inline void dpwssd_inplace(__m512i& acc, __m512i w, __m512i x) {
  asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
}

// In-register transpose of 16 x 16 int32: r[i] lane j -> r[j] lane i.
inline void transpose_16x16_i32(__m512i r[16]) {
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

// 32 weights (one int4/int8 block) of one row as 32 int16 in k order.
template <int kBits>
inline __m512i load_block_i16(const uint8_t* w) {
  if constexpr (kBits == 8) {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  } else {
    const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
    const __m256i lo = _mm256_and_si256(bytes, _mm256_set1_epi16(0x0F));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_srli_epi16(bytes, 4), 1);
  }
}

// Unpacks columns [n0, n0 + cols) x k [k0, k0 + kc) into the panel; columns
// past `cols` are zero (their outputs are never stored).
template <int kBits>
void pack_panel(const WoGemmParams& p, int64_t n0, int cols, int64_t k0, int64_t kc, int64_t xb, Panel& panel) {
  constexpr int64_t kBlockBytes = kBits == 8 ? 32 : 16;
  const int64_t row_bytes = kBits == 8 ? p.k : p.k / 2;
  const auto* w = static_cast<const uint8_t*>(p.qweight) + n0 * row_bytes;
  for (int v = 0; v < kPanelVecs; ++v) {
    for (int64_t b = 0; b < kc / kXBlock; ++b) {
      const int64_t block = k0 / kXBlock + b;
      __m512i r[16];
      for (int c = 0; c < 16; ++c) {
        const int col = v * 16 + c;
        if (col >= cols) {
          r[c] = _mm512_setzero_si512();
          continue;
        }
        const uint8_t* src = w + col * row_bytes + block * kBlockBytes;
        r[c] = load_block_i16<kBits>(src);
        // The next chunk of this row: 48 short row segments per chunk are
        // too many streams for the hardware prefetcher to follow.
        if ((block * kBlockBytes) % 64 == 0 && k0 + kPanelK < p.k)
          _mm_prefetch(reinterpret_cast<const char*>(src + kPanelK * kBlockBytes / kXBlock), _MM_HINT_T1);
      }
      transpose_16x16_i32(r);
      for (int kp = 0; kp < 16; ++kp) _mm512_store_si512(&panel.pairs[b * 16 + kp][v * 16], r[kp]);
    }
  }
  const int64_t groups = p.k / p.group_size;
  for (int64_t b = 0; b < kc / xb; ++b) {
    const int64_t g = (k0 + b * xb) / p.group_size;
    for (int c = 0; c < kPanelCols; ++c) panel.scales[b][c] = c < cols ? p.scales[(n0 + c) * groups + g] : 0.f;
  }
}

// out[m0 .. m0 + MT) x [n0, n0 + 48) += this chunk's products: int32 sums over
// each x block, then one conversion and a (x scale * weight scale) FMA.
template <int MT, int kXbPairs>
void panel_tile(const WoGemmParams& p, const XInt16& x, const Panel& panel, int64_t m0, int64_t n0,
                const __mmask16 store_mask[kPanelVecs], int64_t k0, int64_t kc) {
  const int64_t xblocks = p.k / (2 * kXbPairs);
  float* out = static_cast<float*>(p.out);
  for (int64_t xbl = 0; xbl < kc / (2 * kXbPairs); ++xbl) {
    __m512i acc[MT][kPanelVecs];
    #pragma GCC unroll 8
    for (int i = 0; i < MT; ++i)
      #pragma GCC unroll 8
      for (int v = 0; v < kPanelVecs; ++v) acc[i][v] = _mm512_setzero_si512();
    const int64_t kp0 = xbl * kXbPairs;
    const int32_t* xrow = reinterpret_cast<const int32_t*>(x.q + m0 * p.k + k0) + kp0;
    const int64_t xstride = p.k / 2;  // int32 pairs per row of x
#pragma GCC unroll 1
    for (int kp = 0; kp < kXbPairs; ++kp) {
      __m512i w[kPanelVecs];
      #pragma GCC unroll 8
      for (int v = 0; v < kPanelVecs; ++v) w[v] = _mm512_load_si512(&panel.pairs[kp0 + kp][v * 16]);
      #pragma GCC unroll 8
      for (int i = 0; i < MT; ++i) {
        const __m512i xi = _mm512_set1_epi32(xrow[i * xstride + kp]);
        #pragma GCC unroll 8
        for (int v = 0; v < kPanelVecs; ++v) dpwssd_inplace(acc[i][v], w[v], xi);
      }
    }
    const int64_t xb_index = (k0 + kp0 * 2) / (2 * kXbPairs);
    #pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      const __m512 sx = _mm512_set1_ps(x.scales[(m0 + i) * xblocks + xb_index]);
      float* o = out + (m0 + i) * p.out_row_stride + n0;
      #pragma GCC unroll 8
      for (int v = 0; v < kPanelVecs; ++v) {
        const __m512 s = _mm512_mul_ps(_mm512_load_ps(&panel.scales[xbl][v * 16]), sx);
        const __m512 prev = _mm512_maskz_loadu_ps(store_mask[v], o + v * 16);
        _mm512_mask_storeu_ps(o + v * 16, store_mask[v], _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][v]), s, prev));
      }
    }
  }
}

template <int kXbPairs>
void panel_rows(const WoGemmParams& p, const XInt16& x, const Panel& panel, int64_t n0,
                const __mmask16 mask[kPanelVecs], int64_t k0, int64_t kc) {
  int64_t m = 0;
  for (; m + kPanelRowsOfX <= p.m; m += kPanelRowsOfX)
    panel_tile<kPanelRowsOfX, kXbPairs>(p, x, panel, m, n0, mask, k0, kc);
  for (; m + 4 <= p.m; m += 4) panel_tile<4, kXbPairs>(p, x, panel, m, n0, mask, k0, kc);
  for (; m < p.m; ++m) panel_tile<1, kXbPairs>(p, x, panel, m, n0, mask, k0, kc);
}

// Columns [n_begin, n_end) for every row of x.
template <int kBits>
void panel_gemm(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const int64_t xb = x_block(p), groups = p.k / p.group_size;
  const bool has_zero = p.zeros != nullptr || kBits == 4;
  float* out = static_cast<float*>(p.out);
  Panel panel;
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kPanelCols) {
    const int cols = static_cast<int>(std::min<int64_t>(kPanelCols, n_end - n0));
    __mmask16 mask[kPanelVecs];
    for (int v = 0; v < kPanelVecs; ++v) {
      const int live = std::clamp(cols - v * 16, 0, 16);
      mask[v] = static_cast<__mmask16>((1u << live) - 1u);
    }
    for (int64_t m = 0; m < p.m; ++m) std::memset(out + m * p.out_row_stride + n0, 0, cols * sizeof(float));
    for (int64_t k0 = 0; k0 < p.k; k0 += kPanelK) {
      const int64_t kc = std::min(kPanelK, p.k - k0);
      pack_panel<kBits>(p, n0, cols, k0, kc, xb, panel);
      if (xb == 128) panel_rows<64>(p, x, panel, n0, mask, k0, kc);
      else if (xb == 64) panel_rows<32>(p, x, panel, n0, mask, k0, kc);
      else panel_rows<16>(p, x, panel, n0, mask, k0, kc);
    }
    if (!has_zero && p.bias == nullptr) continue;
    // The zero point's share and the bias, once per output.
    for (int64_t m = 0; m < p.m; ++m)
      for (int c = 0; c < cols; ++c) {
        const int64_t n = n0 + c;
        float& o = out[m * p.out_row_stride + n];
        if (has_zero)
          o -= zero_share(p.scales + n * groups, p.zeros ? p.zeros + n * groups : nullptr, default_zero(kBits),
                          x.group_sums + m * groups, groups);
        if (p.bias) o += p.bias[n];
      }
  }
}

}  // namespace
}  // namespace slimops::cpu::i16
