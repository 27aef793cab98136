// Warpgroup MMA (sm_90a) plumbing: the fences and groups around
// wgmma.mma_async (wgmma_ops.cuh), and the shared-memory descriptor of a
// K-major operand in the 128-byte swizzle.
//
// wgmma runs asynchronously: it reads its A registers and updates its
// accumulators after the instruction has issued. The compiler does not know
// that, so callers keep every register an in-flight wgmma uses alive and in
// place with fence_operand() after the wait that retires it (CUTLASS's
// warpgroup_fence_operand does the same).
#pragma once

#include <cstdint>

#include "wgmma_ops.cuh"

namespace slimops::cuda::wgmma {

// Orders this warpgroup's register writes (A fragments, accumulators) before
// the wgmma instructions that follow.
__device__ __forceinline__ void fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

// Closes the wgmma instructions issued since the last commit into one group.
__device__ __forceinline__ void commit_group() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

// Waits until at most kPending committed groups are still running.
template <int kPending>
__device__ __forceinline__ void wait_group() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Makes this thread's completed generic-proxy writes to shared memory
// (ordinary stores, cp.async) visible to the async proxy that wgmma reads
// operands through; then a barrier hands them to the other threads.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void fence_operand(uint32_t& r) { asm volatile("" : "+r"(r)::"memory"); }
__device__ __forceinline__ void fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

template <typename V, int kN>
__device__ __forceinline__ void fence_operands(V (&r)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) fence_operand(r[i]);
}

// Descriptor (PTX ISA, "Matrix Descriptor Format") of a K-major operand tile
// stored as 128-byte rows (64 half/bf16 k values) in the 128-byte swizzle:
// 16-byte chunk c of row r sits at chunk c ^ (r % 8) of its row, and 8 rows
// (1024 bytes, the swizzle's period) follow each other. The tile must start
// 1024-byte aligned; a k step of 16 moves smem_addr by 32 bytes inside the
// rows (the hardware applies the swizzle to the final address). The leading
// byte offset is unused in this mode.
__device__ __forceinline__ uint64_t desc_k_major_sw128(uint32_t smem_addr) {
  constexpr uint64_t kStrideBytes = 1024;  // from one group of 8 rows to the next
  constexpr uint64_t kSwizzle128B = 1;
  return uint64_t((smem_addr & 0x3FFFFu) >> 4) | (uint64_t(1) << 16) | ((kStrideBytes >> 4) << 32) |
         (kSwizzle128B << 62);
}

// Writes one consumer thread's m64nN f32 accumulators of a transposed
// product (the wgmma's M = output columns, its N = output rows) into out
// [m, *] row-major, adding bias: element 4j + e of a thread is M index
// col_a + 8 (e / 2) and N index 8j + 2t + e % 2 (t = lane % 4), where col_a
// is the thread's first output column. Columns from n on and rows from m on
// are not written; convert rounds a float to T.
template <int kN, typename T, typename Convert>
__device__ __forceinline__ void store_transposed_acc(const float (&acc)[kN / 2], T* out, int64_t out_row_stride,
                                                     int64_t col_a, int64_t n, int64_t m0, int64_t m,
                                                     const float* bias, int t, Convert&& convert) {
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int64_t col = col_a + 8 * hf;
    if (col >= n) continue;
    const float b = bias ? bias[col] : 0.f;
#pragma unroll
    for (int j = 0; j < kN / 8; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int64_t row = m0 + 8 * j + 2 * t + r;
        if (row < m) out[row * out_row_stride + col] = convert(acc[4 * j + 2 * hf + r] + b);
      }
  }
}

}  // namespace slimops::cuda::wgmma
