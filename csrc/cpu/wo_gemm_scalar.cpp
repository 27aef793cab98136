// Portable weight-only GEMM: the path every CPU has, and the one the tests
// hold the vector paths to. Exact float arithmetic on the dequantised weight.
#include "wo_gemm_cpu.h"

namespace slimops::cpu {
namespace {

// The quantised value of weight (n, k) in [0, 15] (int4) or [-128, 127] (int8).
inline int quantised_at(const WoGemmParams& p, int64_t n, int64_t k) {
  if (p.bits == 8) return static_cast<const int8_t*>(p.qweight)[n * p.k + k];
  const uint8_t* row = static_cast<const uint8_t*>(p.qweight) + n * (p.k / 2);
  const int64_t block = k / kInt4BlockK, j = k % kInt4BlockK;
  const uint8_t byte = row[block * (kInt4BlockK / 2) + (j % 16)];
  return j < 16 ? (byte & 0x0F) : (byte >> 4);
}

}  // namespace

Status wo_gemm_scalar(const WoGemmParams& p, int64_t n_begin, int64_t n_end) {
  Status st = check_wo_gemm_cpu_params(p, n_begin, n_end);
  if (st != Status::kOk) return st;

  const float* x = static_cast<const float*>(p.x);
  float* out = static_cast<float*>(p.out);
  const int64_t groups = p.k / p.group_size;

  for (int64_t n = n_begin; n < n_end; ++n) {
    for (int64_t m = 0; m < p.m; ++m) {
      const float* xrow = x + m * p.x_row_stride;
      float total = 0.f;
      // Per group: sum q*x and x separately, then scale once and subtract
      // the zero point's share: the same algebra the vector paths use.
      for (int64_t g = 0; g < groups; ++g) {
        float qx = 0.f, sx = 0.f;
        const int64_t k0 = g * p.group_size;
        for (int64_t kk = k0; kk < k0 + p.group_size; ++kk) {
          qx += xrow[kk] * float(quantised_at(p, n, kk));
          sx += xrow[kk];
        }
        const float zero = p.zeros ? p.zeros[n * groups + g] : default_zero(p.bits);
        total += p.scales[n * groups + g] * (qx - zero * sx);
      }
      if (p.bias) total += p.bias[n];
      out[m * p.out_row_stride + n] = total;
    }
  }
  return Status::kOk;
}

}  // namespace slimops::cpu
