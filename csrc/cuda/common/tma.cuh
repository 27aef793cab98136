// Shared-memory barriers (mbarrier) and the tensor copy engine (TMA), sm_90:
// what a producer/consumer pipeline needs. Host-side tensor maps are built
// by tensor_map.h.
//
// Protocol: a "full" barrier per stage counts one arrival (the producer's
// arrive.expect_tx, announcing the stage's bytes) plus the bytes the copy
// engine delivers; an "empty" barrier counts the consumers' arrivals once
// they are done with the stage. Waiters name the phase parity they wait for.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "ptx.cuh"

namespace slimops::cuda::tma {

__device__ __forceinline__ void barrier_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(ptx::smem_u32(bar)), "r"(count) : "memory");
}

// Makes initialised barriers visible to the copy engine (async proxy).
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void arrive_expect_tx(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(ptx::smem_u32(bar)), "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(ptx::smem_u32(bar)) : "memory");
}

// Spins until the barrier's phase with this parity has completed.
__device__ __forceinline__ void wait(uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n}\n" ::"r"(ptx::smem_u32(bar)),
      "r"(parity)
      : "memory");
}

// A 2D box of `map` at element coordinates (c0 inner, c1 outer) into shared
// memory; completes `bar`'s transaction bytes. Out-of-bounds elements arrive
// as zeros (and still count as bytes).
__device__ __forceinline__ void load_2d(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::
          "r"(ptx::smem_u32(dst)),
      "l"(map), "r"(c0), "r"(c1), "r"(ptx::smem_u32(bar))
      : "memory");
}

// ---- Clusters: blocks that multicast copies into each other's shared memory.

// This block's rank in its cluster.
__device__ __forceinline__ unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}

// Every thread of every block of the cluster: what each block did before
// (barrier initialisation) is visible to the others after.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}

// Arrives on the barrier at `bar`'s offset in block `rank` of the cluster.
// No release fence: callers signal that their wgmmas have finished reading a
// stage (retired by wgmma.wait_group), which orders those reads already; a
// .release.cluster arrival stalled every consumer warp on a MEMBAR (bench/NOTES.md).
__device__ __forceinline__ void arrive_cluster(uint64_t* bar, unsigned rank) {
  asm volatile(
      "{\n.reg .b32 remote;\nmapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n" ::"r"(ptx::smem_u32(bar)),
      "r"(rank)
      : "memory");
}

// load_2d into the same shared-memory offset of every block in `mask` (bit
// r: cluster rank r), completing the barrier at `bar`'s offset in each.
__device__ __forceinline__ void load_2d_multicast(void* dst, const CUtensorMap* map, int c0, int c1, uint64_t* bar,
                                                  uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(ptx::smem_u32(dst)),
      "l"(map), "r"(c0), "r"(c1), "r"(ptx::smem_u32(bar)), "h"(mask)
      : "memory");
}

// Fetches a tensor map into the descriptor cache ahead of its first use.
__device__ __forceinline__ void prefetch_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(map) : "memory");
}

}  // namespace slimops::cuda::tma
