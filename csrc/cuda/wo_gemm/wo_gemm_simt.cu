// Correct-for-every-M weight-only GEMM (int8 and int4) on CUDA cores.
//
// One warp owns one output column n and a tile of kRowsPerWarp activation
// rows: the weight row is read once per tile with 16-byte loads (16 weights
// per lane, 512 per warp step), widened, shifted by its group's zero point,
// scaled by its group's scale and multiplied into kRowsPerWarp float
// accumulators, then reduced across the warp. At M = 1 this is a bandwidth-bound GEMV; at large M it re-reads
// weights M / kRowsPerWarp times and is far from tensor-core speed, which is
// the job of the tensor-core kernels (their own issue).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "quantised_weight.cuh"
#include "wo_gemm_launcher.h"

namespace slimops::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kMaxGridY = 65535;

__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// x[row, k0 .. k0+15] . w16, with x read as two 16-byte vectors.
template <typename T>
__device__ __forceinline__ float dot16(const T* xrow, const float (&w16)[16]) {
  const uint4 lo = *reinterpret_cast<const uint4*>(xrow);
  const uint4 hi = *reinterpret_cast<const uint4*>(xrow + 8);
  const T* xl = reinterpret_cast<const T*>(&lo);
  const T* xh = reinterpret_cast<const T*>(&hi);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 8; ++i) s += to_float(xl[i]) * w16[i];
#pragma unroll
  for (int i = 0; i < 8; ++i) s += to_float(xh[i]) * w16[8 + i];
  return s;
}

// kVec: K and group size are multiples of 16 and x rows and weight rows
// start 16-byte aligned, so every lane can use 16-byte loads.
template <typename T, bool kVec>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    wo_gemm_int8_simt_kernel(WoGemmParams p) {
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kWarpsPerBlock + warp;
  if (n >= p.n) return;

  const T* x = static_cast<const T*>(p.x);
  T* out = static_cast<T*>(p.out);
  const int64_t groups = p.k / p.group_size;
  const float* srow = p.scales + n * groups;

  for (int64_t m0 = int64_t(blockIdx.y) * kRowsPerWarp; m0 < p.m;
       m0 += int64_t(gridDim.y) * kRowsPerWarp) {
    const int rows = p.m - m0 < kRowsPerWarp ? int(p.m - m0) : kRowsPerWarp;
    float acc[kRowsPerWarp] = {};
    if constexpr (kVec) {
      for (int64_t k = int64_t(lane) * 16; k < p.k; k += 32 * 16) {
        float w16[16];
        quantised_16(p, n, k, w16);
        const float z = zero_at(p, n, k / p.group_size);
#pragma unroll
        for (int i = 0; i < 16; ++i) w16[i] -= z;
        const float s = srow[k / p.group_size];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i)
          if (i < rows) acc[i] += s * dot16(x + (m0 + i) * p.x_row_stride + k, w16);
      }
    } else {
      for (int64_t k = lane; k < p.k; k += 32) {
        const float w = (float(quantised_at(p, n, k)) - zero_at(p, n, k / p.group_size)) * srow[k / p.group_size];
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i)
          if (i < rows) acc[i] += w * to_float(x[(m0 + i) * p.x_row_stride + k]);
      }
    }
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const float v = warp_sum(acc[i]);
      if (lane == 0 && i < rows)
        out[(m0 + i) * p.out_row_stride + n] = from_float<T>(p.bias ? v + p.bias[n] : v);
    }
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

template <typename T>
Status launch(const WoGemmParams& p, cudaStream_t stream) {
  // int4 rows are k/2 bytes: 16-byte aligned because k % 32 == 0.
  const bool vec = p.k % 16 == 0 && p.group_size % 16 == 0 && p.x_row_stride % 8 == 0 &&
                   aligned16(p.x) && aligned16(p.qweight);
  const int64_t grid_x = (p.n + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int64_t tiles_m = (p.m + kRowsPerWarp - 1) / kRowsPerWarp;
  const dim3 grid(unsigned(grid_x), unsigned(tiles_m < kMaxGridY ? tiles_m : kMaxGridY));
  const dim3 block(kWarpsPerBlock * 32);
  if (vec)
    wo_gemm_int8_simt_kernel<T, true><<<grid, block, 0, stream>>>(p);
  else
    wo_gemm_int8_simt_kernel<T, false><<<grid, block, 0, stream>>>(p);
  // Peek, not get: the binding reads (and clears) the error to name it.
  return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
}

}  // namespace

WoGemmPlan wo_gemm_cuda_plan(const WoGemmParams& p) {
  // H100, bf16, 2026-11-22 (bench/NOTES.md): the small-M GEMV (wo_gemv.cu)
  // beats cuBLAS bf16 up to M = 4-8; this file's kernel re-reads the weights
  // every kRowsPerWarp rows and by M = 16 is 5x slower than cuBLAS alone,
  // while one dequantisation pass costs about a third of a bf16 GEMV.
  constexpr int64_t kMaxFusedM = 8;
  return p.m <= kMaxFusedM ? WoGemmPlan::kFused : WoGemmPlan::kDequantThenDense;
}

Status wo_gemm_cuda(const WoGemmParams& p, cudaStream_t stream) {
  if (p.bits != 8 && p.bits != 4) return Status::kUnsupported;
  if (p.bits == 4 && (p.k % kInt4BlockK != 0 || p.group_size % kInt4BlockK != 0)) return Status::kInvalidArgument;
  if (p.m < 0 || p.n < 0 || p.k <= 0 || p.group_size <= 0 || p.k % p.group_size != 0 ||
      p.x_row_stride < p.k || p.out_row_stride < p.n)
    return Status::kInvalidArgument;
  if (p.m == 0 || p.n == 0) return Status::kOk;
  if (wo_gemv_applies(p)) return wo_gemv_cuda(p, stream);
  if ((p.n + kWarpsPerBlock - 1) / kWarpsPerBlock > 0x7fffffff) return Status::kInvalidArgument;
  switch (p.x_dtype) {
    case DType::kFloat16: return launch<__half>(p, stream);
    case DType::kBFloat16: return launch<__nv_bfloat16>(p, stream);
    default: return Status::kUnsupported;
  }
}

}  // namespace slimops::cuda
