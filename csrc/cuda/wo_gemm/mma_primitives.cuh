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

namespace slimops::cuda::mma {

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, bypassing L1 (weights and x are read once per
// block); `.L2::128B` asks L2 to fetch the whole 128-byte line, since the
// next pipeline stage reads the bytes after these. valid = false copies no
// bytes and zero-fills the destination (the K and N tails).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}

// 4 bytes (one float scale or zero point); .ca since the 4 threads that
// share a scale group read neighbouring words of one line.
__device__ __forceinline__ void cp_async_4(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0)
               : "memory");
}

// Adds to a device-scope counter with acquire-release semantics: the
// caller's earlier writes (and, through a preceding __syncthreads, its
// block's) are visible to whoever reads the result, and the caller sees
// everything released before the value it read.
__device__ __forceinline__ int atomic_add_acq_rel(int* addr, int v) {
  int old;
  asm volatile("atom.add.acq_rel.gpu.s32 %0, [%1], %2;\n" : "=r"(old) : "l"(addr), "r"(v) : "memory");
  return old;
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most kPending of this thread's committed groups are in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Four 8x8 b16 matrices: lanes 8i..8i+7 give the row addresses of matrix i;
// lane l receives 32-bit word (l % 4) of row (l / 4) of each matrix.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// (a & b) | c in one instruction: a nibble mask and a float "magic" exponent.
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  // immLut for (A & B) | C with A = 0xF0, B = 0xCC, C = 0xAA.
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

template <typename V>
__device__ __forceinline__ uint32_t as_u32(V v) {
  static_assert(sizeof(V) == 4, "a packed pair");
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
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
