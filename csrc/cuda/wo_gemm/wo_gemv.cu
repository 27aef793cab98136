// Weight-only GEMV for small M (1 to 8 rows of x) on CUDA cores, int8 and
// int4: the decode case, where the whole job is streaming the weights once.
//
// Each warp owns kRowsOfW = 2 output columns so every activation value it
// loads serves two weight rows; each lane takes whole 16-byte weight chunks
// (16 int8, or one 32-weight int4 block with both nibble halves used, so no
// byte is read twice) and keeps kUnroll of them in flight before using them.
// Quantised values become floats with the exponent trick
// (bits 0x4B000000 | q is 2^23 + q) instead of integer-to-float conversions,
// which run at a quarter of the FMA rate. The zero point enters once per
// chunk: sum (q - z) x = sum q x - z sum x.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "wo_gemm_launcher.h"

namespace slimops::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsOfW = 2;
constexpr int kMaxRowsOfX = 8;
constexpr int kUnroll = 2;

__device__ __forceinline__ float2 to_float2(uint32_t packed, __half) {
  return __half22float2(*reinterpret_cast<const __half2*>(&packed));
}
__device__ __forceinline__ float2 to_float2(uint32_t packed, __nv_bfloat16) {
  // bf16 -> f32 is a 16-bit shift: cheaper than the conversion intrinsic.
  return make_float2(__uint_as_float(packed << 16), __uint_as_float(packed & 0xFFFF0000u));
}
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Byte b (0-3) of a 32-bit word as a float, exactly: 2^23 + b - 2^23.
__device__ __forceinline__ float byte_as_float(uint32_t word, int b) {
  return __uint_as_float(0x4B000000u | ((word >> (8 * b)) & 0xFFu)) - 8388608.f;
}
__device__ __forceinline__ float nibble_as_float(uint32_t word, int shift) {
  return __uint_as_float(0x4B000000u | ((word >> shift) & 0xFu)) - 8388608.f;
}

// Weights one lane's chunk covers: 16 int8 or 32 int4.
template <int kBits> constexpr int kChunk = kBits == 8 ? 16 : 32;

// The kC quantised values of one 16-byte weight chunk as floats (int8 in
// offset binary, q + 128; int4 as 0..15), in k order.
template <int kBits>
__device__ __forceinline__ void decode_chunk(const uint4& w, float (&q)[kChunk<kBits>]) {
  const uint32_t words[4] = {w.x, w.y, w.z, w.w};
  if constexpr (kBits == 8) {
#pragma unroll
    for (int j = 0; j < 16; ++j) q[j] = byte_as_float(words[j / 4] ^ 0x80808080u, j % 4);
  } else {
    // Block layout: byte j holds k = j (low nibble) and k = j + 16 (high).
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      q[j] = nibble_as_float(words[j / 4], 8 * (j % 4));
      q[j + 16] = nibble_as_float(words[j / 4], 8 * (j % 4) + 4);
    }
  }
}

// kC activation values of one row as floats, and their sum.
template <typename T, int kC>
__device__ __forceinline__ float decode_x(const T* x, float (&xf)[kC]) {
  float sum = 0.f;
#pragma unroll
  for (int v = 0; v < kC / 8; ++v) {
    const uint4 xv = *reinterpret_cast<const uint4*>(x + 8 * v);
    const uint32_t xs[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 f = to_float2(xs[j], T{});
      xf[8 * v + 2 * j] = f.x;
      xf[8 * v + 2 * j + 1] = f.y;
      sum += f.x + f.y;
    }
  }
  return sum;
}

template <typename T, int kBits, int kRows>
__global__ void __launch_bounds__(kWarps * 32) wo_gemv_kernel(WoGemmParams p) {
  constexpr int kC = kChunk<kBits>;
  const int lane = threadIdx.x % 32;
  const int64_t n0 = (int64_t(blockIdx.x) * kWarps + threadIdx.x / 32) * kRowsOfW;
  if (n0 >= p.n) return;
  const int rows_w = p.n - n0 < kRowsOfW ? int(p.n - n0) : kRowsOfW;
  const int64_t row_bytes = p.k * kBits / 8;
  const uint8_t* w = static_cast<const uint8_t*>(p.qweight) + n0 * row_bytes;
  const T* x = static_cast<const T*>(p.x);
  const int64_t chunks = p.k / kC, groups = p.k / p.group_size;
  // int8 values were read as offset binary (q + 128): shift the zero point to match.
  const float zero_shift = kBits == 8 ? 128.f : 0.f;

  float acc[kRows][kRowsOfW] = {};
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
    uint4 wv[kUnroll][kRowsOfW];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < kRowsOfW; ++r) {
        const int64_t c = c0 + 32 * u;
        wv[u][r] = (c < chunks && r < rows_w) ? *reinterpret_cast<const uint4*>(w + r * row_bytes + c * 16)
                                             : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c >= chunks) break;
      const int64_t g = c * kC / p.group_size;
      // Each weight is decoded once and each x value once, then reused
      // across the tile: at M = 4 re-decoding per pair made this compute-bound.
      float q[kRowsOfW][kC];
      float s[kRowsOfW], z[kRowsOfW];
#pragma unroll
      for (int r = 0; r < kRowsOfW; ++r) {
        decode_chunk<kBits>(wv[u][r], q[r]);
        const int64_t gi = (n0 + (r < rows_w ? r : 0)) * groups + g;
        s[r] = p.scales[gi];
        z[r] = (p.zeros ? p.zeros[gi] : default_zero(kBits)) + zero_shift;
      }
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        if (i >= p.m) break;  // kRows is an upper bound (M = 5 runs the 6-row kernel)
        float xf[kC];
        const float xsum = decode_x<T, kC>(x + i * p.x_row_stride + c * kC, xf);
#pragma unroll
        for (int r = 0; r < kRowsOfW; ++r) {
          float dot = 0.f;
#pragma unroll
          for (int j = 0; j < kC; ++j) dot = fmaf(q[r][j], xf[j], dot);
          acc[i][r] = fmaf(s[r], dot - z[r] * xsum, acc[i][r]);
        }
      }
    }
  }
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int i = 0; i < kRows; ++i)
#pragma unroll
    for (int r = 0; r < kRowsOfW; ++r) {
      if (i >= p.m) break;
      float v = acc[i][r];
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == 0 && r < rows_w) out[i * p.out_row_stride + n0 + r] = from_float<T>(p.bias ? v + p.bias[n0 + r] : v);
    }
}

template <typename T, int kBits>
Status launch_bits(const WoGemmParams& p, cudaStream_t stream) {
  const int64_t rows_per_block = kWarps * kRowsOfW;
  const dim3 grid(unsigned((p.n + rows_per_block - 1) / rows_per_block));
  const dim3 block(kWarps * 32);
  switch (p.m) {
    case 1: wo_gemv_kernel<T, kBits, 1><<<grid, block, 0, stream>>>(p); break;
    case 2: wo_gemv_kernel<T, kBits, 2><<<grid, block, 0, stream>>>(p); break;
    case 3: wo_gemv_kernel<T, kBits, 3><<<grid, block, 0, stream>>>(p); break;
    case 4: wo_gemv_kernel<T, kBits, 4><<<grid, block, 0, stream>>>(p); break;
    case 5: case 6: wo_gemv_kernel<T, kBits, 6><<<grid, block, 0, stream>>>(p); break;
    default: wo_gemv_kernel<T, kBits, 8><<<grid, block, 0, stream>>>(p); break;
  }
  return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
}

template <typename T>
Status launch(const WoGemmParams& p, cudaStream_t stream) {
  return p.bits == 8 ? launch_bits<T, 8>(p, stream) : launch_bits<T, 4>(p, stream);
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace

bool wo_gemv_applies(const WoGemmParams& p) {
  const int64_t chunk = p.bits == 8 ? 16 : 32;
  return p.m >= 1 && p.m <= kMaxRowsOfX && (p.bits == 8 || p.bits == 4) && p.k % chunk == 0 &&
         p.group_size % chunk == 0 && p.x_row_stride % 8 == 0 && aligned16(p.x) && aligned16(p.qweight) &&
         p.n <= int64_t(0x7fffffff) * kWarps * kRowsOfW;
}

Status wo_gemv_cuda(const WoGemmParams& p, cudaStream_t stream) {
  if (!wo_gemv_applies(p)) return Status::kInvalidArgument;
  switch (p.x_dtype) {
    case DType::kFloat16: return launch<__half>(p, stream);
    case DType::kBFloat16: return launch<__nv_bfloat16>(p, stream);
    default: return Status::kUnsupported;
  }
}

}  // namespace slimops::cuda
