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

// One ISA's vector operations for the tiles below. Avx2Ops works on 256-bit
// vectors (a 32-weight block is two of them); Avx512Ops on 512-bit ones (one
// vector a block) and has 32 registers, so its GEMM tile is larger.
template <bool kVnni>
struct Avx2Ops {
  using VI = __m256i;
  using VF = __m256;
  struct WBlock { __m256i lo, hi; };  // k 0-15 and 16-31 as int16
  static constexpr int kGemmRowsOfW = 2, kGemmRowsOfX = 3;

  static VI zero_i() { return _mm256_setzero_si256(); }
  static VF zero_f() { return _mm256_setzero_ps(); }
  template <int kBits>
  static WBlock load_w(const uint8_t* w) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w));
    if constexpr (kBits == 8) {
      return {_mm256_cvtepi8_epi16(v), _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16)))};
    } else {
      // Widen the 16 bytes once; in 16-bit lanes the high nibble is a plain
      // shift and the low one a mask: one shuffle per 32 weights, not two.
      const __m256i bytes = _mm256_cvtepu8_epi16(v);
      return {_mm256_and_si256(bytes, _mm256_set1_epi16(0x0F)), _mm256_srli_epi16(bytes, 4)};
    }
  }
  // acc += the block's int16 products, summed in pairs. AVX-VNNI fuses the
  // multiply-add and the accumulate (vpdpwssd); plain AVX2 needs two ops.
  static VI dot_block(VI acc, const WBlock& w, const int16_t* x) {
    const __m256i xlo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    const __m256i xhi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 16));
#if defined(__AVXVNNI__)
    if constexpr (kVnni) return _mm256_dpwssd_avx_epi32(_mm256_dpwssd_avx_epi32(acc, w.lo, xlo), w.hi, xhi);
#endif
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(w.lo, xlo), _mm256_madd_epi16(w.hi, xhi)));
  }
  static VF fma_scaled(VI acc, float scale, VF tot) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(scale), tot);
  }
  static float hsum(VF v) { return hsum_f32x8(v); }
};

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
struct Avx512Ops {
  using VI = __m512i;
  using VF = __m512;
  struct WBlock { __m512i v; };  // k 0-31 as int16
  static constexpr int kGemmRowsOfW = 4, kGemmRowsOfX = 3;

  static VI zero_i() { return _mm512_setzero_si512(); }
  static VF zero_f() { return _mm512_setzero_ps(); }
  template <int kBits>
  static WBlock load_w(const uint8_t* w) {
    if constexpr (kBits == 8) {
      return {_mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)))};
    } else {
      const __m256i bytes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
      const __m256i lo = _mm256_and_si256(bytes, _mm256_set1_epi16(0x0F));
      return {_mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_srli_epi16(bytes, 4), 1)};
    }
  }
  static VI dot_block(VI acc, const WBlock& w, const int16_t* x) {
    return _mm512_dpwssd_epi32(acc, w.v, _mm512_loadu_si512(x));
  }
  static VF fma_scaled(VI acc, float scale, VF tot) {
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(scale), tot);
  }
  static float hsum(VF v) { return _mm512_reduce_add_ps(v); }
};
#endif

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
template <class Ops, int kBits, int R, int MT, int kSub>
void i16_tile(const WoGemmParams& p, const XInt16& x, int64_t n0, int64_t m0, int64_t xb_begin, int64_t xb_end,
              bool first, bool last) {
  using VI = typename Ops::VI;
  using VF = typename Ops::VF;
  constexpr int64_t kBlockBytes = kBits == 8 ? 32 : 16;
  constexpr int64_t kXb = kSub * kXBlock;
  const int64_t row_bytes = kBits == 8 ? p.k : p.k / 2;
  const uint8_t* w = static_cast<const uint8_t*>(p.qweight) + n0 * row_bytes;
  const int64_t xblocks = p.k / kXb, groups = p.k / p.group_size, xb_per_group = p.group_size / kXb;

  VF tot[MT][R];
#pragma GCC unroll 8
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) tot[i][r] = Ops::zero_f();

  for (int64_t xbi = xb_begin; xbi < xb_end; ++xbi) {
    if constexpr (MT == 1 && kBits == 4) {
      // int4 GEMV: fetch the next tile's rows at the same offset. With the
      // weights coming from DRAM (a real model's layers evict each other) the
      // hardware prefetcher restarts on every short int4 row and left 4096 x
      // 14336 at ~19 GB/s (1.6 -> 1.1 ms). int8 rows are twice as long and
      // measured slower with it (bench/NOTES.md).
      for (int r = 0; r < R; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(w + (R + r) * row_bytes + xbi * kSub * kBlockBytes), _MM_HINT_T0);
    }
    // int32 sums over one x block (<= 128 weights: < 2^27, no overflow).
    VI acc[MT][R];
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = Ops::zero_i();
#pragma GCC unroll 4
    for (int sub = 0; sub < kSub; ++sub) {
      const int64_t b = xbi * kSub + sub;
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const auto wb = Ops::template load_w<kBits>(w + r * row_bytes + b * kBlockBytes);
#pragma GCC unroll 8
        for (int i = 0; i < MT; ++i) acc[i][r] = Ops::dot_block(acc[i][r], wb, x.q + (m0 + i) * p.k + b * kXBlock);
      }
    }
    const int64_t g = xbi / xb_per_group;
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      const float sx = x.scales[(m0 + i) * xblocks + xbi];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) tot[i][r] = Ops::fma_scaled(acc[i][r], sx * p.scales[(n0 + r) * groups + g], tot[i][r]);
    }
  }

  const bool has_zero = p.zeros != nullptr || kBits == 4;
  float* out = static_cast<float*>(p.out);
  for (int i = 0; i < MT; ++i)
    for (int r = 0; r < R; ++r) {
      float& o = out[(m0 + i) * p.out_row_stride + n0 + r];
      float v = Ops::hsum(tot[i][r]) + (first ? 0.f : o);
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
// the GEMV (M < kGemmMinM); from there Ops::kGemmRowsOfW x kGemmRowsOfX reuses
// each unpacked weight block kGemmRowsOfX times, and K is cut into chunks whose
// int16 activations (M x kKChunk x 2 bytes) stay in L1 while every weight row
// of the thread passes over them: without the chunks each pair of weight
// rows re-streamed all of x from L2, which bounded M = 16 at ~10 MACs/cycle.
constexpr int64_t kKChunk = 1024;
// Measured on the 2-core Xeon (bench/NOTES.md): the 2 x 3 tiles reach the
// same ~30 GMAC/s per core as repeated 4 x 1 GEMV passes, so they only pay
// from M = 16 on, where the GEMV would stream the weights 16 times.
constexpr int64_t kGemmMinM = 16;

template <class Ops, int kBits, int R, int kSub, bool kGemv>
void i16_rows(const WoGemmParams& p, const XInt16& x, int64_t n0, int64_t xb0, int64_t xb1, bool first, bool last) {
  if constexpr (kGemv) {
    for (int64_t m = 0; m < p.m; ++m) i16_tile<Ops, kBits, R, 1, kSub>(p, x, n0, m, xb0, xb1, first, last);
  } else {
    int64_t m = 0;
    for (; m + Ops::kGemmRowsOfX <= p.m; m += Ops::kGemmRowsOfX)
      i16_tile<Ops, kBits, R, Ops::kGemmRowsOfX, kSub>(p, x, n0, m, xb0, xb1, first, last);
    for (; m + 2 <= p.m; m += 2) i16_tile<Ops, kBits, R, 2, kSub>(p, x, n0, m, xb0, xb1, first, last);
    if (p.m - m == 1) i16_tile<Ops, kBits, R, 1, kSub>(p, x, n0, m, xb0, xb1, first, last);
  }
}

template <class Ops, int kBits, int kSub>
void i16_gemm(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const int64_t xblocks = p.k / (kSub * kXBlock);
  if (p.m < kGemmMinM) {
    int64_t n = n_begin;
    for (; n + 4 <= n_end; n += 4) i16_rows<Ops, kBits, 4, kSub, true>(p, x, n, 0, xblocks, true, true);
    for (; n < n_end; ++n) i16_rows<Ops, kBits, 1, kSub, true>(p, x, n, 0, xblocks, true, true);
    return;
  }
  const int64_t chunk = std::max<int64_t>(1, kKChunk / (kSub * kXBlock));
  for (int64_t xb0 = 0; xb0 < xblocks; xb0 += chunk) {
    const int64_t xb1 = std::min(xblocks, xb0 + chunk);
    const bool first = xb0 == 0, last = xb1 == xblocks;
    int64_t n = n_begin;
    for (; n + Ops::kGemmRowsOfW <= n_end; n += Ops::kGemmRowsOfW)
      i16_rows<Ops, kBits, Ops::kGemmRowsOfW, kSub, false>(p, x, n, xb0, xb1, first, last);
    for (; n < n_end; ++n) i16_rows<Ops, kBits, 1, kSub, false>(p, x, n, xb0, xb1, first, last);
  }
}

// The whole integer-path GEMM for rows [n_begin, n_end), every template
// choice resolved from the params.
template <class Ops>
void i16_gemm_blocks(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const int sub = static_cast<int>(x_block(p) / kXBlock);
  if (p.bits == 8) {
    if (sub == 4) return i16_gemm<Ops, 8, 4>(p, x, n_begin, n_end);
    if (sub == 2) return i16_gemm<Ops, 8, 2>(p, x, n_begin, n_end);
    return i16_gemm<Ops, 8, 1>(p, x, n_begin, n_end);
  }
  if (sub == 4) return i16_gemm<Ops, 4, 4>(p, x, n_begin, n_end);
  if (sub == 2) return i16_gemm<Ops, 4, 2>(p, x, n_begin, n_end);
  return i16_gemm<Ops, 4, 1>(p, x, n_begin, n_end);
}

// Checks shared by every ISA's entry point.
inline Status check_i16_params(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const Status st = check_wo_gemm_cpu_params(p, n_begin, n_end);
  if (st != Status::kOk) return st;
  return int16_path_applies(p) && x.q != nullptr ? Status::kOk : Status::kInvalidArgument;
}

// The checks, then the dispatch.
template <class Ops>
Status i16_gemm_dispatch(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const Status st = check_i16_params(p, x, n_begin, n_end);
  if (st != Status::kOk) return st;
  i16_gemm_blocks<Ops>(p, x, n_begin, n_end);
  return Status::kOk;
}

}  // namespace
}  // namespace slimops::cpu::i16
