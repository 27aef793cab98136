// PTX wrappers shared by the tensor-core kernels (wo_gemm, kv_attention,
// sparse24, lowrank): shared-memory addresses, cp.async copies and groups,
// ldmatrix, lop3, streaming loads. Each family adds what only it needs in its
// own primitives header.
#pragma once

#include <cstdint>
#include <cstring>

namespace slimops::cuda::ptx {

// 16 bytes read exactly once (weights): non-coherent, not kept in L1, which
// the data read many times needs.
__device__ __forceinline__ uint4 load_once(const void* ptr) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(ptr));
  return v;
}

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

}  // namespace slimops::cuda::ptx
