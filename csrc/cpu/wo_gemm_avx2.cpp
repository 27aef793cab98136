// AVX2 weight-only GEMM, int8 weights, float32 activations.
//
// A register tile of R weight rows x MT activation rows accumulates 8-wide
// along K: each int8 weight vector is widened once and reused by the MT
// activation rows, so at M = 1 the loop streams the weights at close to the
// memory rate and at larger M the conversion cost is shared. With group
// scales the widened weights are scaled per group (one multiply per 8
// weights); with per-channel scales the scale is applied once at the end.
// This is the foundation kernel; the blocked GEMM path for large M and the
// int4 / int8-activation paths belong to their own issue.
#include "avx2_helpers.h"
#include "wo_gemm_cpu.h"
#include "../common/static_switch.h"

namespace slimops::cpu {
namespace {

using avx2::hsum_f32x8;
using avx2::load_i8x8_as_f32;

template <int R, int MT, bool kPerChannel>
void int8_tile(const WoGemmParams& p, int64_t n0, int64_t m0) {
  const float* x = static_cast<const float*>(p.x) + m0 * p.x_row_stride;
  const int8_t* w = static_cast<const int8_t*>(p.qweight) + n0 * p.k;
  const int64_t groups = p.k / p.group_size;
  const int64_t gs = p.group_size;
  const int64_t gs_vec = gs & ~int64_t(7);

  __m256 acc[MT][R];
  float tail[MT][R];
  for (int i = 0; i < MT; ++i)
    for (int r = 0; r < R; ++r) { acc[i][r] = _mm256_setzero_ps(); tail[i][r] = 0.f; }

  for (int64_t g = 0; g < groups; ++g) {
    const int64_t k0 = g * gs;
    float s[R];
    __m256 vs[R];
    for (int r = 0; r < R; ++r) {
      s[r] = kPerChannel ? 1.f : p.scales[(n0 + r) * groups + g];
      vs[r] = _mm256_set1_ps(s[r]);
    }
    for (int64_t kk = k0; kk < k0 + gs_vec; kk += 8) {
      __m256 wv[R];
      for (int r = 0; r < R; ++r) {
        wv[r] = load_i8x8_as_f32(w + r * p.k + kk);
        if (!kPerChannel) wv[r] = _mm256_mul_ps(wv[r], vs[r]);
      }
      for (int i = 0; i < MT; ++i) {
        const __m256 xv = _mm256_loadu_ps(x + i * p.x_row_stride + kk);
        for (int r = 0; r < R; ++r) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
      }
    }
    for (int64_t kk = k0 + gs_vec; kk < k0 + gs; ++kk)
      for (int i = 0; i < MT; ++i)
        for (int r = 0; r < R; ++r)
          tail[i][r] += x[i * p.x_row_stride + kk] * float(w[r * p.k + kk]) * s[r];
  }

  const float* bias = p.bias;
  float* out = static_cast<float*>(p.out);
  for (int i = 0; i < MT; ++i)
    for (int r = 0; r < R; ++r) {
      float v = hsum_f32x8(acc[i][r]) + tail[i][r];
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
  BOOL_SWITCH(p.group_size == p.k, kPerChannel, [&] {
    int64_t n = n_begin;
    for (; n + 4 <= n_end; n += 4) int8_rows<4, kPerChannel>(p, n);
    for (; n < n_end; ++n) int8_rows<1, kPerChannel>(p, n);
  });
  return Status::kOk;
}

}  // namespace slimops::cpu
