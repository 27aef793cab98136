// Dequantises an int8 or int4 weight [N, K] with group scales (and zero
// points) into fp16/bf16 [N, K].
//
// Used above the M where one dequantisation pass plus a dense tensor-core
// GEMM (cuBLAS, called by the bindings) beats the CUDA-core kernel, which
// re-reads the weights for every 4 rows of x. It reads N*K bytes and writes
// 2*N*K: at ~3 TB/s that is ~0.25 ms for an 8192 x 28672 layer.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "quantised_weight.cuh"
#include "wo_gemm_launcher.h"

namespace slimops::cuda {
namespace {

template <typename T> __device__ __forceinline__ T to_t(float v);
template <> __device__ __forceinline__ __half to_t<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 to_t<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// One thread per 8 consecutive weights of a row: one 8-byte load (int8; for
// int4 the 8 bytes of a 32-block that hold them, low or high nibbles) and one
// 16-byte store, so a warp writes 512 contiguous bytes. Rows go by blockIdx.y
// and 8-weight chunks by x: no 64-bit division per element (the former flat
// index paid three). Needs K (int4: whole 32-blocks) and the group size
// divisible by 8, and 16-byte aligned bases (launch checks).
template <typename T, int kBits>
__global__ void dequant_rows_kernel(WoGemmParams p, T* __restrict__ w) {
  const int chunks = int(p.k / 8);
  const int64_t groups = p.k / p.group_size;
  const int group_size = int(p.group_size);
  for (int64_t row = blockIdx.y; row < p.n; row += gridDim.y) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < chunks; c += gridDim.x * blockDim.x) {
      const int k0 = 8 * c;
      const int64_t g = k0 / group_size;
      const float s = p.scales[row * groups + g];
      const float z = zero_at(p, row, g);
      uint8_t v[8];
      int shift = 0;
      if constexpr (kBits == 8) {
        *reinterpret_cast<uint2*>(v) =
            *reinterpret_cast<const uint2*>(static_cast<const uint8_t*>(p.qweight) + row * p.k + k0);
      } else {
        // Block of 32 = 16 bytes: weights j and j + 16 share byte j.
        const uint8_t* block = static_cast<const uint8_t*>(p.qweight) + row * (p.k / 2) + (k0 / 32) * 16;
        *reinterpret_cast<uint2*>(v) = *reinterpret_cast<const uint2*>(block + (k0 % 16));
        shift = (k0 % 32) >= 16 ? 4 : 0;
      }
      T o[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float q = kBits == 8 ? float(int8_t(v[j])) : float((v[j] >> shift) & 0x0F);
        o[j] = to_t<T>((q - z) * s);
      }
      *reinterpret_cast<int4*>(w + row * p.k + k0) = *reinterpret_cast<const int4*>(o);
    }
  }
}

// Any shape: one weight per thread over a flat index.
template <typename T>
__global__ void dequant_flat_kernel(WoGemmParams p, T* __restrict__ w) {
  const int64_t items = p.n * p.k;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < items; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / p.k, col = e % p.k;
    const float s = p.scales[row * (p.k / p.group_size) + col / p.group_size];
    w[e] = to_t<T>((float(quantised_at(p, row, col)) - zero_at(p, row, col / p.group_size)) * s);
  }
}

template <typename T>
Status launch(const WoGemmParams& p, void* w_out, cudaStream_t stream) {
  T* w = static_cast<T*>(w_out);
  const int threads = 256;
  const bool rows = p.k % (p.bits == 4 ? 32 : 8) == 0 && p.group_size % 8 == 0 && p.k / 8 <= 0x7fffffff &&
                    (reinterpret_cast<uintptr_t>(p.qweight) & 15u) == 0 &&
                    (reinterpret_cast<uintptr_t>(w_out) & 15u) == 0;
  if (rows) {
    const int64_t per_row = (p.k / 8 + threads - 1) / threads;
    const dim3 grid(unsigned(per_row < 65535 ? per_row : 65535), unsigned(p.n < 65535 ? p.n : 65535));
    if (p.bits == 8)
      dequant_rows_kernel<T, 8><<<grid, threads, 0, stream>>>(p, w);
    else
      dequant_rows_kernel<T, 4><<<grid, threads, 0, stream>>>(p, w);
  } else {
    const int64_t blocks = (p.n * p.k + threads - 1) / threads;
    dequant_flat_kernel<T><<<unsigned(blocks < 65536 * 8 ? blocks : 65536 * 8), threads, 0, stream>>>(p, w);
  }
  return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
}

}  // namespace

Status dequantize_cuda(const WoGemmParams& p, void* w_out, cudaStream_t stream) {
  if (p.bits != 8 && p.bits != 4) return Status::kUnsupported;
  if (p.n < 0 || p.k <= 0 || p.group_size <= 0 || p.k % p.group_size != 0 || w_out == nullptr)
    return Status::kInvalidArgument;
  if (p.n == 0) return Status::kOk;
  switch (p.x_dtype) {
    case DType::kFloat16: return launch<__half>(p, w_out, stream);
    case DType::kBFloat16: return launch<__nv_bfloat16>(p, w_out, stream);
    default: return Status::kUnsupported;
  }
}

}  // namespace slimops::cuda
