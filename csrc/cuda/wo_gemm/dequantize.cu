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

// kVec: each thread converts 16 consecutive weights of one group with one
// 16-byte load and two 16-byte stores.
template <typename T, bool kVec>
__global__ void dequant_kernel(WoGemmParams p, T* __restrict__ w) {
  constexpr int kPer = kVec ? 16 : 1;
  const int64_t groups = p.k / p.group_size;
  const int64_t items = p.n * p.k / kPer;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < items;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = i * kPer;
    const int64_t row = e / p.k, col = e % p.k;
    const float s = p.scales[row * groups + col / p.group_size];
    const float z = zero_at(p, row, col / p.group_size);
    if constexpr (kVec) {
      float q[16];
      quantised_16(p, row, col, q);
      T o[16];
#pragma unroll
      for (int j = 0; j < 16; ++j) o[j] = to_t<T>((q[j] - z) * s);
      reinterpret_cast<int4*>(w + e)[0] = reinterpret_cast<const int4*>(o)[0];
      reinterpret_cast<int4*>(w + e)[1] = reinterpret_cast<const int4*>(o)[1];
    } else {
      w[e] = to_t<T>((float(quantised_at(p, row, col)) - z) * s);
    }
  }
}

template <typename T>
Status launch(const WoGemmParams& p, void* w_out, cudaStream_t stream) {
  const bool vec = p.k % 16 == 0 && p.group_size % 16 == 0 &&
                   (reinterpret_cast<uintptr_t>(p.qweight) & 15u) == 0 &&
                   (reinterpret_cast<uintptr_t>(w_out) & 15u) == 0;
  const int64_t items = vec ? p.n * p.k / 16 : p.n * p.k;
  const int threads = 256;
  const int64_t blocks = (items + threads - 1) / threads;
  const unsigned grid = unsigned(blocks < 65536 * 8 ? blocks : 65536 * 8);
  T* w = static_cast<T*>(w_out);
  if (vec)
    dequant_kernel<T, true><<<grid, threads, 0, stream>>>(p, w);
  else
    dequant_kernel<T, false><<<grid, threads, 0, stream>>>(p, w);
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
