// PTX wrappers for Hopper's bulk asynchronous copies (sm_90+): one thread
// asks the copy engine for a whole contiguous range, global -> shared, and an
// mbarrier counts the bytes as they land. A block can so put tens of
// kilobytes in flight with a handful of instructions, where cp.async needs a
// thread per 16 bytes and a register-light kernel cannot keep enough of them
// outstanding to reach the DRAM rate.
//
// Every function here needs sm_90; callers compile them only in their
// sm_90 device pass.
#pragma once

#include <cstdint>

#include "ptx.cuh"

namespace slimops::cuda::bulk {

using ptx::smem_u32;

// An mbarrier that completes a phase after `count` arrivals and all the
// bytes announced by arrive_expect_tx have landed.
__device__ __forceinline__ void barrier_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}

// Makes the initialised barriers visible to the copy engine (the async
// proxy) before any copy names them; a __syncthreads must follow.
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// One arrival that also announces `bytes` more to wait for in this phase.
__device__ __forceinline__ void arrive_expect_tx(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}

// Waits for the phase of parity `parity` to complete (phases alternate 0, 1).
__device__ __forceinline__ void wait(uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(smem_u32(bar)),
      "r"(parity)
      : "memory");
}

// `bytes` (a multiple of 16; both addresses 16-byte aligned) global -> shared;
// their arrival completes that many of bar's expected bytes.
__device__ __forceinline__ void copy_to_shared(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
          smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(bar))
      : "memory");
}

// Asks L2 to fetch `bytes` (a multiple of 16, 16-byte aligned) from DRAM now,
// for a later copy to find there.
__device__ __forceinline__ void prefetch_l2(const void* src, unsigned bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(src), "r"(bytes) : "memory");
}

}  // namespace slimops::cuda::bulk
