// AVX2 weight-only GEMM, int8 weights, float32 activations: the exact path,
// used where the integer path (wo_gemm_i16_avx2.cpp) does not apply (k or
// group size not a multiple of 32).
//
// A register tile of R weight rows x MT activation rows accumulates 8-wide
// along K: each int8 weight vector is widened once and reused by the MT
// activation rows, so at M = 1 the loop streams the weights at close to the
// memory rate and at larger M the conversion cost is shared. With group
// scales the widened weights are scaled per group (one multiply per 8
// weights); with per-channel scales the scale is applied once at the end.
// This is the foundation kernel; the blocked GEMM path for large M and the
// int4 / int8-activation paths belong to their own issue.
#if defined(__AVX2__) && defined(__FMA__)
#include "avx2_helpers.h"
#include "wo_gemm_cpu.h"
#include "../common/static_switch.h"

#include <type_traits>

namespace slimops::cpu {
namespace {

using avx2::hsum_f32x8;
using avx2::load_i8x8_as_f32;

template <int R, int MT, bool kPerChannel>
void int8_tile(const WoGemmParams& p, int64_t n0, int64_t m0) {
  // FMA latency is 4 cycles and two issue per cycle, so at least 8
  // independent accumulator chains keep the FMA ports busy: with one
  // activation row, unroll K by two to get them.
  constexpr int U = MT == 1 ? 2 : 1;
  const float* x = static_cast<const float*>(p.x) + m0 * p.x_row_stride;
  const int8_t* w = static_cast<const int8_t*>(p.qweight) + n0 * p.k;
  const int64_t groups = p.k / p.group_size;
  const int64_t gs = p.group_size;

  __m256 acc[MT][R][U];
  float tail[MT][R];
  for (int i = 0; i < MT; ++i)
    for (int r = 0; r < R; ++r) {
      for (int u = 0; u < U; ++u) acc[i][r][u] = _mm256_setzero_ps();
      tail[i][r] = 0.f;
    }

  // Adds columns [kk, kk + 8*UU) of the R x MT tile into acc.
  auto step = [&](int64_t kk, auto uu) {
    constexpr int UU = decltype(uu)::value;
    __m256 wv[R][UU];
    for (int r = 0; r < R; ++r)
      for (int u = 0; u < UU; ++u) {
        wv[r][u] = load_i8x8_as_f32(w + r * p.k + kk + 8 * u);
        if (!kPerChannel) wv[r][u] = _mm256_mul_ps(wv[r][u], _mm256_set1_ps(p.scales[(n0 + r) * groups + kk / gs]));
      }
    for (int i = 0; i < MT; ++i)
      for (int u = 0; u < UU; ++u) {
        const __m256 xv = _mm256_loadu_ps(x + i * p.x_row_stride + kk + 8 * u);
        for (int r = 0; r < R; ++r) acc[i][r][u] = _mm256_fmadd_ps(xv, wv[r][u], acc[i][r][u]);
      }
  };

  for (int64_t g = 0; g < groups; ++g) {
    const int64_t k0 = g * gs, k1 = k0 + gs;
    int64_t kk = k0;
    for (; kk + 8 * U <= k1; kk += 8 * U) step(kk, std::integral_constant<int, U>{});
    for (; kk + 8 <= k1; kk += 8) step(kk, std::integral_constant<int, 1>{});
    for (; kk < k1; ++kk)
      for (int i = 0; i < MT; ++i)
        for (int r = 0; r < R; ++r) {
          const float s = kPerChannel ? 1.f : p.scales[(n0 + r) * groups + g];
          tail[i][r] += x[i * p.x_row_stride + kk] * float(w[r * p.k + kk]) * s;
        }
  }

  const float* bias = p.bias;
  float* out = static_cast<float*>(p.out);
  for (int i = 0; i < MT; ++i)
    for (int r = 0; r < R; ++r) {
      __m256 sum = acc[i][r][0];
      for (int u = 1; u < U; ++u) sum = _mm256_add_ps(sum, acc[i][r][u]);
      float v = hsum_f32x8(sum) + tail[i][r];
      if (kPerChannel) v *= p.scales[n0 + r];
      if (bias) v += bias[n0 + r];
      out[(m0 + i) * p.out_row_stride + n0 + r] = v;
    }
}

template <int R, bool kPerChannel>
void int8_rows(const WoGemmParams& p, int64_t n0) {
  int64_t m = 0;
  for (; m + 2 <= p.m; m += 2) int8_tile<R, 2, kPerChannel>(p, n0, m);
  if (m < p.m) int8_tile<R, 1, kPerChannel>(p, n0, m);
}

}  // namespace

Status wo_gemm_int8_avx2(const WoGemmParams& p, int64_t n_begin, int64_t n_end) {
  Status st = check_wo_gemm_cpu_params(p, n_begin, n_end);
  if (st != Status::kOk) return st;
  if (p.bits != 8 || p.zeros != nullptr) return Status::kUnsupported;
  BOOL_SWITCH(p.group_size == p.k, kPerChannel, [&] {
    int64_t n = n_begin;
    for (; n + 4 <= n_end; n += 4) int8_rows<4, kPerChannel>(p, n);
    for (; n < n_end; ++n) int8_rows<1, kPerChannel>(p, n);
  });
  return Status::kOk;
}

}  // namespace slimops::cpu

#else  // built without AVX2 flags (non-x86): cpu_supports(kAvx2) is false, never called

#include "wo_gemm_cpu.h"

namespace slimops::cpu {
Status wo_gemm_int8_avx2(const WoGemmParams&, int64_t, int64_t) { return Status::kUnsupported; }
}  // namespace slimops::cpu

#endif
