// Reading one quantised weight on the device, for every format the CUDA
// kernels accept (layouts in common/wo_gemm_params.h).
#pragma once

#include <cstdint>

#include "../../common/wo_gemm_params.h"

namespace slimops::cuda {

// Quantised value of weight (n, k): int8 as stored, int4 as 0..15.
__device__ __forceinline__ int quantised_at(const WoGemmParams& p, int64_t n, int64_t k) {
  if (p.bits == 8) return static_cast<const int8_t*>(p.qweight)[n * p.k + k];
  const uint8_t* row = static_cast<const uint8_t*>(p.qweight) + n * (p.k / 2);
  const int64_t j = k % kInt4BlockK;
  const uint8_t byte = row[(k / kInt4BlockK) * (kInt4BlockK / 2) + (j % 16)];
  return j < 16 ? (byte & 0x0F) : (byte >> 4);
}

__device__ __forceinline__ float zero_at(const WoGemmParams& p, int64_t n, int64_t group) {
  return p.zeros ? p.zeros[n * (p.k / p.group_size) + group] : default_zero(p.bits);
}

// The 16 quantised values k0 .. k0+15 (k0 a multiple of 16) with one 16-byte
// load; the row must start 16-byte aligned.
__device__ __forceinline__ void quantised_16(const WoGemmParams& p, int64_t n, int64_t k0, float (&q)[16]) {
  if (p.bits == 8) {
    int8_t v[16];
    *reinterpret_cast<int4*>(v) = *reinterpret_cast<const int4*>(static_cast<const int8_t*>(p.qweight) + n * p.k + k0);
#pragma unroll
    for (int i = 0; i < 16; ++i) q[i] = float(v[i]);
  } else {
    // A block of 32 is 16 bytes: k0 % 32 == 0 takes the low nibbles, else the high.
    uint8_t v[16];
    const uint8_t* row = static_cast<const uint8_t*>(p.qweight) + n * (p.k / 2);
    *reinterpret_cast<int4*>(v) = *reinterpret_cast<const int4*>(row + (k0 / kInt4BlockK) * (kInt4BlockK / 2));
    const int shift = (k0 % kInt4BlockK) ? 4 : 0;
#pragma unroll
    for (int i = 0; i < 16; ++i) q[i] = float((v[i] >> shift) & 0x0F);
  }
}

}  // namespace slimops::cuda
