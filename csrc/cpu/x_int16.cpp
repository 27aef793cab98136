// Activation quantisation for the integer-MAC CPU path.
//
// Why int16: it keeps 15 bits per value, so even a block holding a 20-sigma
// outlier rounds its neighbours to ~1e-4 of the outlier's magnitude, and
// per-block scales (x_block) confine an outlier's coarser step to its own
// block. int8 activations would be faster but lose ~1e-2 on such inputs.
#include <cmath>

#include "wo_gemm_cpu.h"

namespace slimops::cpu {

XInt16 x_int16_views(const WoGemmParams& p, void* scratch) {
  XInt16 v;
  auto* q = static_cast<int16_t*>(scratch);
  auto* scales = reinterpret_cast<float*>(q + p.m * p.k);
  v.q = q;
  v.scales = scales;
  v.group_sums = scales + p.m * (p.k / x_block(p));
  return v;
}

XInt16 quantize_x_int16(const WoGemmParams& p, void* scratch, int64_t m_begin, int64_t m_end) {
  const XInt16 v = x_int16_views(p, scratch);
  auto* q = const_cast<int16_t*>(v.q);
  auto* scales = const_cast<float*>(v.scales);
  auto* sums = const_cast<float*>(v.group_sums);
  const int64_t xb = x_block(p), blocks = p.k / xb, groups = p.k / p.group_size;
  for (int64_t m = m_begin; m < m_end; ++m) {
    const float* xrow = static_cast<const float*>(p.x) + m * p.x_row_stride;
    // Group sums are taken of the quantised x, so that sum (q - z) x is
    // computed on one consistent x and the zero point's large share cancels.
    for (int64_t b = 0; b < blocks; ++b) {
      float amax = 0.f;
      for (int64_t j = 0; j < xb; ++j) amax = std::fmax(amax, std::fabs(xrow[b * xb + j]));
      const float scale = amax > 0.f ? amax / 32767.f : 1.f;
      const float inv = 1.f / scale;
      scales[m * blocks + b] = scale;
      for (int64_t j = 0; j < xb; ++j)
        q[m * p.k + b * xb + j] = static_cast<int16_t>(std::lrintf(xrow[b * xb + j] * inv));
    }
    for (int64_t g = 0; g < groups; ++g) {
      float s = 0.f;
      for (int64_t kk = g * p.group_size; kk < (g + 1) * p.group_size; ++kk)
        s += float(q[m * p.k + kk]) * scales[m * blocks + kk / xb];
      sums[m * groups + g] = s;
    }
  }
  return v;
}

}  // namespace slimops::cpu
