// The integer-path weight-only GEMM kernel, shared by the AVX2 and AVX-VNNI
// builds (wo_gemm_i16_avx2.cpp, wo_gemm_i16_avxvnni.cpp): int8 or int4 weights
// against int16-quantised activations (x_int16.cpp), for k and groups that
// are multiples of 32. Include only from sources compiled with AVX2 flags.
//
// Why: widening int8 to float costs two shuffles and a convert per 8
// weights and leaves the GEMV compute-bound near ~6 weights/cycle/core;
// vpmaddwd multiplies 16 int16 pairs in one instruction, so one block of 32
// weights costs two multiply-adds once unpacked. Each x block's int32 sum is
// scaled by (x block scale * weight group scale) into a float accumulator;
// the zero point's share, z * sum(x), is subtracted once per group. Products
// are summed in int32 over each x block (up to 128 weights) before a single
// float conversion and scale, which keeps the float work off the two ports
// the multiply-adds need.
#pragma once

#include <algorithm>

#include "avx2_helpers.h"
#include "wo_gemm_cpu.h"

// An anonymous namespace: each including source (compiled with its own ISA
// flags) gets its own copy, so the linker can never mix them.
namespace slimops::cpu::i16 {
namespace {

using avx2::hsum_f32x8;

// The GEMM register tile once M is large enough: kGemmRowsOfW weight rows x
// kGemmRowsOfX activation rows (int32 and float accumulators for each pair,
// plus an unpacked weight block, must fit the 16 ymm registers).
constexpr int kGemmRowsOfX = 3;
constexpr int kGemmRowsOfW = 2;

// acc += sum of adjacent int16 products. AVX-VNNI fuses the multiply-add and
// the accumulate into one instruction (vpdpwssd); plain AVX2 needs two.
template <bool kVnni>
inline __m256i dot_accumulate(__m256i acc, __m256i a, __m256i b) {
#if defined(__AVXVNNI__)
  if constexpr (kVnni) return _mm256_dpwssd_avx_epi32(acc, a, b);
#endif
  return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
}

// The 32 weights of one block as two vectors of 16 int16 (k 0-15, k 16-31).
template <int kBits>
inline void load_block_i16(const uint8_t* w, __m256i& lo, __m256i& hi) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
  if constexpr (kBits == 8) {
    lo = _mm256_cvtepi8_epi16(v);
    hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16)));
  } else {
    // Widen the 16 bytes once; in 16-bit lanes the high nibble is a plain
    // shift and the low one a mask: one shuffle per 32 weights, not two.
    const __m256i bytes = _mm256_cvtepu8_epi16(v);
    lo = _mm256_and_si256(bytes, _mm256_set1_epi16(0x0F));
    hi = _mm256_srli_epi16(bytes, 4);
  }
}

// sum over groups of scale * zero * (sum of x over the group): the zero
// point's share of one output, as a dot product over the G groups.
inline float zero_share(const float* s, const float* z, float z_default, const float* xsum, int64_t groups) {
  __m256 acc = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= groups; g += 8) {
    const __m256 zs = z ? _mm256_loadu_ps(z + g) : _mm256_set1_ps(z_default);
    acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(s + g), zs), _mm256_loadu_ps(xsum + g), acc);
  }
  float share = hsum_f32x8(acc);
  for (; g < groups; ++g) share += s[g] * (z ? z[g] : z_default) * xsum[g];
  return share;
}

// One register tile: R weight rows x MT activation rows over the x blocks
// [xb_begin, xb_end). The first K chunk writes out, later ones add to it; the
// last subtracts the zero point's share and adds the bias. kSub: 32-weight
// blocks per x block, a compile-time count so the block loop unrolls and the
// accumulators stay in registers.
template <bool kVnni, int kBits, int R, int MT, int kSub>
void i16_tile(const WoGemmParams& p, const XInt16& x, int64_t n0, int64_t m0, int64_t xb_begin, int64_t xb_end,
              bool first, bool last) {
  constexpr int64_t kBlockBytes = kBits == 8 ? 32 : 16;
  constexpr int64_t kXb = kSub * kXBlock;
  const int64_t row_bytes = kBits == 8 ? p.k : p.k / 2;
  const uint8_t* w = static_cast<const uint8_t*>(p.qweight) + n0 * row_bytes;
  const int64_t xblocks = p.k / kXb, groups = p.k / p.group_size, xb_per_group = p.group_size / kXb;

  __m256 tot[MT][R];
#pragma GCC unroll 8
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) tot[i][r] = _mm256_setzero_ps();

  for (int64_t xbi = xb_begin; xbi < xb_end; ++xbi) {
    // int32 sums over one x block (<= 128 weights: < 2^27, no overflow),
    // two per pair (k 0-15 and 16-31 of each block): vpdpwssd has 5 cycles of
    // latency, and one chain per pair left the VNNI path latency-bound.
    __m256i acc[MT][R][2];
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r][0] = acc[i][r][1] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int sub = 0; sub < kSub; ++sub) {
      const int64_t b = xbi * kSub + sub;
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        __m256i wlo, whi;
        load_block_i16<kBits>(w + r * row_bytes + b * kBlockBytes, wlo, whi);
#pragma GCC unroll 8
        for (int i = 0; i < MT; ++i) {
          const int16_t* xq = x.q + (m0 + i) * p.k + b * kXBlock;
          acc[i][r][0] = dot_accumulate<kVnni>(acc[i][r][0], wlo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq)));
          acc[i][r][1] = dot_accumulate<kVnni>(acc[i][r][1], whi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 16)));
        }
      }
    }
    const int64_t g = xbi / xb_per_group;
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      const float sx = x.scales[(m0 + i) * xblocks + xbi];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        tot[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc[i][r][0], acc[i][r][1])),
                                    _mm256_set1_ps(sx * p.scales[(n0 + r) * groups + g]), tot[i][r]);
    }
  }

  const bool has_zero = p.zeros != nullptr || kBits == 4;
  float* out = static_cast<float*>(p.out);
  for (int i = 0; i < MT; ++i)
    for (int r = 0; r < R; ++r) {
      float& o = out[(m0 + i) * p.out_row_stride + n0 + r];
      float v = hsum_f32x8(tot[i][r]) + (first ? 0.f : o);
      if (last) {
        if (has_zero)
          v -= zero_share(p.scales + (n0 + r) * groups, p.zeros ? p.zeros + (n0 + r) * groups : nullptr,
                          default_zero(kBits), x.group_sums + (m0 + i) * groups, groups);
        if (p.bias) v += p.bias[n0 + r];
      }
      o = v;
    }
}

// Register tiles: 4 weight rows x 1 activation row streams the weights for
// the GEMV (M < kGemmMinM); from there kGemmRowsOfW x kGemmRowsOfX reuses each
// unpacked weight block kGemmRowsOfX times, and K is cut into chunks whose
// int16 activations (M x kKChunk x 2 bytes) stay in L1 while every weight row
// of the thread passes over them: without the chunks each pair of weight
// rows re-streamed all of x from L2, which bounded M = 16 at ~10 MACs/cycle.
constexpr int64_t kKChunk = 1024;
// Measured on the 2-core Xeon (bench/NOTES.md): the 2 x 3 tiles reach the
// same ~30 GMAC/s per core as repeated 4 x 1 GEMV passes, so they only pay
// from M = 16 on, where the GEMV would stream the weights 16 times.
constexpr int64_t kGemmMinM = 16;

template <bool kVnni, int kBits, int R, int kSub>
void i16_rows(const WoGemmParams& p, const XInt16& x, int64_t n0, int64_t xb0, int64_t xb1, bool first, bool last) {
  if constexpr (R == 4) {
    for (int64_t m = 0; m < p.m; ++m) i16_tile<kVnni, kBits, 4, 1, kSub>(p, x, n0, m, xb0, xb1, first, last);
  } else {
    int64_t m = 0;
    for (; m + kGemmRowsOfX <= p.m; m += kGemmRowsOfX)
      i16_tile<kVnni, kBits, R, kGemmRowsOfX, kSub>(p, x, n0, m, xb0, xb1, first, last);
    for (; m + 2 <= p.m; m += 2) i16_tile<kVnni, kBits, R, 2, kSub>(p, x, n0, m, xb0, xb1, first, last);
    if (p.m - m == 1) i16_tile<kVnni, kBits, R, 1, kSub>(p, x, n0, m, xb0, xb1, first, last);
  }
}

template <bool kVnni, int kBits, int kSub>
void i16_gemm(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const int64_t xblocks = p.k / (kSub * kXBlock);
  if (p.m < kGemmMinM) {
    int64_t n = n_begin;
    for (; n + 4 <= n_end; n += 4) i16_rows<kVnni, kBits, 4, kSub>(p, x, n, 0, xblocks, true, true);
    for (; n < n_end; ++n) i16_rows<kVnni, kBits, 1, kSub>(p, x, n, 0, xblocks, true, true);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, kKChunk / (kSub * kXBlock));
  for (int64_t xb0 = 0; xb0 < xblocks; xb0 += chunk) {
    const int64_t xb1 = std::min(xblocks, xb0 + chunk);
    const bool first = xb0 == 0, last = xb1 == xblocks;
    int64_t n = n_begin;
    for (; n + kGemmRowsOfW <= n_end; n += kGemmRowsOfW)
      i16_rows<kVnni, kBits, kGemmRowsOfW, kSub>(p, x, n, xb0, xb1, first, last);
    for (; n < n_end; ++n) i16_rows<kVnni, kBits, 1, kSub>(p, x, n, xb0, xb1, first, last);
  }
}

// The whole integer-path GEMM for rows [n_begin, n_end), every template
// choice resolved from the params.
template <bool kVnni>
void i16_gemm_dispatch(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const int sub = static_cast<int>(x_block(p) / kXBlock);
  if (p.bits == 8) {
    if (sub == 4) return i16_gemm<kVnni, 8, 4>(p, x, n_begin, n_end);
    if (sub == 2) return i16_gemm<kVnni, 8, 2>(p, x, n_begin, n_end);
    return i16_gemm<kVnni, 8, 1>(p, x, n_begin, n_end);
  }
  if (sub == 4) return i16_gemm<kVnni, 4, 4>(p, x, n_begin, n_end);
  if (sub == 2) return i16_gemm<kVnni, 4, 2>(p, x, n_begin, n_end);
  return i16_gemm<kVnni, 4, 1>(p, x, n_begin, n_end);
}

}  // namespace
}  // namespace slimops::cpu::i16
