// PTX wrappers the tensor-core weight-only GEMM (wo_gemm_mma.cu) is built
// from: asynchronous global->shared copies, ldmatrix, mma.sync m16n8k16 and
// packed half/bf16 arithmetic on raw 32-bit registers. Everything here needs
// sm_80 or newer.
//
// Packed values travel as uint32_t rather than __half2 / __nv_bfloat162 so
// that the dequantisation bit tricks (lop3, prmt) and the mma operands share
// one register type with no conversions in between.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "../common/ptx.cuh"

namespace slimops::cuda::mma {

using ptx::and_or;
using ptx::as_u32;
using ptx::cp_async_16;
using ptx::cp_async_4;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::ldmatrix_x4;
using ptx::smem_u32;

// Adds to a device-scope counter with acquire-release semantics: the
// caller's earlier writes (and, through a preceding __syncthreads, its
// block's) are visible to whoever reads the result, and the caller sees
// everything released before the value it read.
__device__ __forceinline__ int atomic_add_acq_rel(int* addr, int v) {
  int old;
  asm volatile("atom.add.acq_rel.gpu.s32 %0, [%1], %2;\n" : "=r"(old) : "l"(addr), "r"(v) : "memory");
  return old;
}

// Device-scope acquire load: what was released before the value read is
// visible to the caller afterwards (the wait of a spin on a counter).
__device__ __forceinline__ int load_acquire(const int* addr) {
  int v;
  asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(addr) : "memory");
  return v;
}

// Asks L2 to fetch the 128-byte line holding addr and to keep it ahead of
// streamed data (evict_last): bytes a block reads only at its very end.
__device__ __forceinline__ void prefetch_l2_evict_last(const void* addr) {
  asm volatile("prefetch.global.L2::evict_last [%0];\n" ::"l"(addr));
}

// Per element type: packed fma, the pair (v, v), and the mma itself.
template <typename T> struct Packed;

template <>
struct Packed<__half> {
  __device__ static __forceinline__ uint32_t fma(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
  }
  // One cvt for both halves (the intrinsic converts once, then packs).
  __device__ static __forceinline__ uint32_t splat(float v) {
    uint32_t d;
    asm("cvt.rn.f16x2.f32 %0, %1, %1;\n" : "=r"(d) : "f"(v));
    return d;
  }
  // (lo, hi) rounded to a pair; lo lands in the low 16 bits (lower k).
  __device__ static __forceinline__ uint32_t pack(float lo, float hi) { return as_u32(__floats2half2_rn(lo, hi)); }
  __device__ static __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
  __device__ static __forceinline__ float to_float(__half v) { return __half2float(v); }
  // d += a * b: A 16x16 row-major, B 16x8 "col" (k contiguous per n), f32 accumulators.
  __device__ static __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

template <>
struct Packed<__nv_bfloat16> {
  __device__ static __forceinline__ uint32_t fma(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
  }
  __device__ static __forceinline__ uint32_t splat(float v) {
    uint32_t d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %1;\n" : "=r"(d) : "f"(v));
    return d;
  }
  __device__ static __forceinline__ uint32_t pack(float lo, float hi) {
    return as_u32(__floats2bfloat162_rn(lo, hi));
  }
  __device__ static __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  __device__ static __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

}  // namespace slimops::cuda::mma
