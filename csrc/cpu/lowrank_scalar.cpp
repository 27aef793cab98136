// Scalar low-rank projection: the exact reference path every vector path is
// tested against, and the path on CPUs without AVX2.
#include <cstring>

#include "lowrank_cpu.h"

namespace slimops::cpu {
namespace {

float load_weight(const void* w, int64_t i, DType dtype) {
  if (dtype == DType::kFloat32) return static_cast<const float*>(w)[i];
  const uint16_t h = static_cast<const uint16_t*>(w)[i];
  if (dtype == DType::kBFloat16) {
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  // IEEE half: sign, 5-bit exponent, 10-bit mantissa (subnormals included).
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    int e = -1;
    uint32_t m = man;
    do { ++e; m <<= 1; } while ((m & 0x400) == 0);
    bits = sign | ((112 - e) << 23) | ((m & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

Status lowrank_down_scalar(const LowRankParams& p, float* t, int64_t j_begin, int64_t j_end) {
  const Status st = check_lowrank_cpu_params(p, j_begin, j_end, p.r);
  if (st != Status::kOk) return st;
  const float* x = static_cast<const float*>(p.x);
  for (int64_t m = 0; m < p.m; ++m)
    for (int64_t j = j_begin; j < j_end; ++j) {
      double acc = 0.0;
      for (int64_t kk = 0; kk < p.k; ++kk) acc += double(x[m * p.x_row_stride + kk]) * load_weight(p.v, j * p.k + kk, p.dtype);
      t[m * p.r + j] = static_cast<float>(acc);
    }
  return Status::kOk;
}

Status lowrank_up_scalar(const LowRankParams& p, const float* t, int64_t n_begin, int64_t n_end) {
  const Status st = check_lowrank_cpu_params(p, n_begin, n_end, p.n);
  if (st != Status::kOk) return st;
  float* out = static_cast<float*>(p.out);
  for (int64_t m = 0; m < p.m; ++m)
    for (int64_t n = n_begin; n < n_end; ++n) {
      double acc = p.bias ? p.bias[n] : 0.0;
      for (int64_t j = 0; j < p.r; ++j) acc += double(t[m * p.r + j]) * load_weight(p.u, n * p.r + j, p.dtype);
      out[m * p.out_row_stride + n] = static_cast<float>(acc);
    }
  return Status::kOk;
}

}  // namespace slimops::cpu
