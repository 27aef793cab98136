// Portable weight-only GEMM: the path every CPU has, and the one the tests
// hold the vector paths to.
#include "wo_gemm_cpu.h"

namespace slimops::cpu {

Status wo_gemm_int8_scalar(const WoGemmParams& p, int64_t n_begin, int64_t n_end) {
  Status st = check_wo_gemm_cpu_params(p, n_begin, n_end);
  if (st != Status::kOk) return st;

  const float* x = static_cast<const float*>(p.x);
  const int8_t* w = static_cast<const int8_t*>(p.qweight);
  const float* bias = p.bias;
  float* out = static_cast<float*>(p.out);
  const int64_t groups = p.k / p.group_size;

  for (int64_t n = n_begin; n < n_end; ++n) {
    const int8_t* wrow = w + n * p.k;
    const float* srow = p.scales + n * groups;
    for (int64_t m = 0; m < p.m; ++m) {
      const float* xrow = x + m * p.x_row_stride;
      float total = 0.f;
      // Sum each group in integer weights first, then scale once: the same
      // order the vector paths use, and one multiply per group.
      for (int64_t g = 0; g < groups; ++g) {
        float acc = 0.f;
        const int64_t k0 = g * p.group_size;
        for (int64_t kk = k0; kk < k0 + p.group_size; ++kk) acc += xrow[kk] * float(wrow[kk]);
        total += acc * srow[g];
      }
      if (bias) total += bias[n];
      out[m * p.out_row_stride + n] = total;
    }
  }
  return Status::kOk;
}

}  // namespace slimops::cpu
