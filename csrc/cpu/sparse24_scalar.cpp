// Scalar 2:4 sparse matmul (any CPU): each kept value meets the x element
// its metadata names.
#include "bf16_convert.h"
#include "sparse24_cpu.h"

namespace slimops::cpu {

Status sparse24_rows_scalar(const Sparse24Params& p, int64_t n0, int64_t n1) {
  const Status st = check_sparse24_cpu_params(p, n0, n1);
  if (st != Status::kOk) return st;
  const float* x = static_cast<const float*>(p.x);
  float* out = static_cast<float*>(p.out);
  const int64_t half = p.k / 2, meta_row = p.k / 8;
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* meta = p.meta + n * meta_row;
    for (int64_t m = 0; m < p.m; ++m) {
      const float* xr = x + m * p.x_row_stride;
      float acc = 0.f;
      for (int64_t g = 0; g < p.k / 4; ++g) {
        const int nib = (meta[g / 2] >> (4 * (g % 2))) & 0xF;
        for (int t = 0; t < 2; ++t) {
          const int64_t vi = n * half + 2 * g + t;
          const float w = p.dtype == DType::kFloat32 ? static_cast<const float*>(p.values)[vi]
                                                     : bf16_to_f32(static_cast<const uint16_t*>(p.values)[vi]);
          acc += w * xr[4 * g + ((nib >> (2 * t)) & 3)];
        }
      }
      out[m * p.out_row_stride + n] = acc + (p.bias ? p.bias[n] : 0.f);
    }
  }
  return Status::kOk;
}

}  // namespace slimops::cpu
