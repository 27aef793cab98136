// AVX2 weight-only GEMM on integer multiply-adds: int8 or int4 weights
// against int16-quantised activations (x_int16.cpp), for k and groups that
// are multiples of 32.
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
#if defined(__AVX2__) && defined(__FMA__)
#include <type_traits>

#include "avx2_helpers.h"
#include "wo_gemm_cpu.h"

namespace slimops::cpu {
namespace {

using avx2::hsum_f32x8;

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

// kSub: 32-weight blocks per x block (x_block / 32), a compile-time count so
// the block loop unrolls and the accumulators stay in registers.
template <int kBits, int R, int MT, int kSub>
void i16_tile(const WoGemmParams& p, const XInt16& x, int64_t n0, int64_t m0) {
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

  for (int64_t xbi = 0; xbi < xblocks; ++xbi) {
    // int32 sums over one x block (<= 128 weights: < 2^27, no overflow).
    __m256i acc[MT][R];
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[i][r] = _mm256_setzero_si256();
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
          const __m256i xlo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
          const __m256i xhi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + 16));
          acc[i][r] = _mm256_add_epi32(acc[i][r], _mm256_add_epi32(_mm256_madd_epi16(wlo, xlo),
                                                                   _mm256_madd_epi16(whi, xhi)));
        }
      }
    }
    const int64_t g = xbi / xb_per_group;
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      const float sx = x.scales[(m0 + i) * xblocks + xbi];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        tot[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[i][r]),
                                    _mm256_set1_ps(sx * p.scales[(n0 + r) * groups + g]), tot[i][r]);
    }
  }

  const bool has_zero = p.zeros != nullptr || kBits == 4;
  float* out = static_cast<float*>(p.out);
  for (int i = 0; i < MT; ++i)
    for (int r = 0; r < R; ++r) {
      float v = hsum_f32x8(tot[i][r]);
      if (has_zero)
        v -= zero_share(p.scales + (n0 + r) * groups, p.zeros ? p.zeros + (n0 + r) * groups : nullptr,
                        default_zero(kBits), x.group_sums + (m0 + i) * groups, groups);
      if (p.bias) v += p.bias[n0 + r];
      out[(m0 + i) * p.out_row_stride + n0 + r] = v;
    }
}

// Register tiles: 4 weight rows x 1 activation row streams the weights for
// the GEMV; 2 x 3 reuses each unpacked block three times for larger M, and
// fits the 16 ymm registers (6 accumulators, 4 weight halves, 2 x halves).
template <int kBits, int R, int kSub>
void i16_rows(const WoGemmParams& p, const XInt16& x, int64_t n0) {
  if constexpr (R == 4) {
    for (int64_t m = 0; m < p.m; ++m) i16_tile<kBits, 4, 1, kSub>(p, x, n0, m);
  } else {
    int64_t m = 0;
    for (; m + 2 <= p.m; m += 2) i16_tile<kBits, R, 2, kSub>(p, x, n0, m);
    if (p.m - m == 1) i16_tile<kBits, R, 1, kSub>(p, x, n0, m);
  }
}

template <int kBits, int kSub>
void i16_gemm(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  if (p.m <= 2) {
    for (; n + 4 <= n_end; n += 4) i16_rows<kBits, 4, kSub>(p, x, n);
  } else {
    for (; n + 2 <= n_end; n += 2) i16_rows<kBits, 2, kSub>(p, x, n);
  }
  for (; n < n_end; ++n) i16_rows<kBits, 1, kSub>(p, x, n);
}

template <int kBits>
void i16_gemm_for_block(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  switch (x_block(p) / kXBlock) {
    case 4: return i16_gemm<kBits, 4>(p, x, n_begin, n_end);
    case 2: return i16_gemm<kBits, 2>(p, x, n_begin, n_end);
    default: return i16_gemm<kBits, 1>(p, x, n_begin, n_end);
  }
}

}  // namespace

Status wo_gemm_i16_avx2(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  Status st = check_wo_gemm_cpu_params(p, n_begin, n_end);
  if (st != Status::kOk) return st;
  if (!int16_path_applies(p) || x.q == nullptr) return Status::kInvalidArgument;
  if (p.bits == 8)
    i16_gemm_for_block<8>(p, x, n_begin, n_end);
  else
    i16_gemm_for_block<4>(p, x, n_begin, n_end);
  return Status::kOk;
}

}  // namespace slimops::cpu

#else  // built without AVX2 flags (non-x86): cpu_supports(kAvx2) is false, never called

#include "wo_gemm_cpu.h"

namespace slimops::cpu {
Status wo_gemm_i16_avx2(const WoGemmParams&, const XInt16&, int64_t, int64_t) { return Status::kUnsupported; }
}  // namespace slimops::cpu

#endif
