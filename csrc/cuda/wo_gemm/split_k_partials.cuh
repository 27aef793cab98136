// Split-K for the tensor-core weight-only GEMMs (wo_gemm_mma_kernel.cuh,
// wo_gemm_wgmma_kernel.cuh): `splits` blocks share an output tile over
// disjoint k-ranges. Each writes its f32 accumulators to the caller's
// workspace and counts itself in; the last to arrive sums all partials in
// split order (the result does not depend on arrival order) and writes the
// tile. Nothing spins, so no block waits on one that is not resident.
#pragma once

#include <cstdint>

#include "mma_primitives.cuh"

namespace slimops::cuda::wo_mma {

struct SplitK {
  int iters;            // stages of k in the whole K (the last may be partial)
  int iters_per_split;  // every split gets at least one
  int splits;           // partials per tile: the k-ranges (+ the low-rank correction's)
  int* counters;        // [tiles], zero on entry when splits > 1
  float4* partials;     // [tiles][splits][kFloats / 4][kThreads]
};

// acc: the kFloats accumulators (kFloats % 4 == 0) of thread tid of the
// kThreads that hold an output tile, split `split` of `splits`;
// tile_partials: the tile's [splits][kFloats / 4][kThreads] float4 partials.
// Returns false if another split finishes the tile; otherwise acc holds the
// sum of all splits. `flag` is one int of shared memory; `sync` is a barrier
// over exactly those kThreads, and every one of them calls this.
// `arrive_last` is called by tid 0 once the block's partials are ordered
// before it, and returns true for the tile's last arrival with acquire-release
// semantics (its caller then sees every split's partials).
template <int kFloats, int kThreads, typename Sync, typename ArriveLast>
__device__ __forceinline__ bool sum_split_partials(float4* tile_partials, int splits, int split, int tid,
                                                   float (&acc)[kFloats], int* flag, Sync&& sync,
                                                   ArriveLast&& arrive_last) {
  static_assert(kFloats % 4 == 0, "float4 partials");
  constexpr int kVecs = kFloats / 4;
  tile_partials += tid;
  float4* const mine = tile_partials + int64_t(split) * kVecs * kThreads;
#pragma unroll
  for (int v = 0; v < kVecs; ++v)
    __stcg(mine + v * kThreads, make_float4(acc[4 * v], acc[4 * v + 1], acc[4 * v + 2], acc[4 * v + 3]));
  // The barrier orders every thread's partials before thread 0's release;
  // its acquire (if last) orders the other splits' partials before the
  // reads below, which the second barrier extends to the whole block.
  sync();
  if (tid == 0) *flag = arrive_last();
  sync();
  if (!*flag) return false;
#pragma unroll
  for (int i = 0; i < kFloats; ++i) acc[i] = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float4* src = tile_partials + int64_t(s) * kVecs * kThreads;
#pragma unroll
    for (int v = 0; v < kVecs; ++v) {
      const float4 x = __ldcg(src + v * kThreads);
      acc[4 * v] += x.x;
      acc[4 * v + 1] += x.y;
      acc[4 * v + 2] += x.z;
      acc[4 * v + 3] += x.w;
    }
  }
  return true;
}

// The weight-only GEMMs' split-K: counters zero when the launch starts, one
// atomic add per arrival; the last arrival puts the counter back to 0, so a
// caller's counters stay zeroed for its next launch (SplitKCounters in
// wo_gemm_launcher.h).
template <int kFloats, int kThreads, typename Sync>
__device__ __forceinline__ bool reduce_split_k(const SplitK& sk, int64_t tile, int split, int tid,
                                               float (&acc)[kFloats], int* flag, Sync&& sync) {
  return sum_split_partials<kFloats, kThreads>(
      sk.partials + tile * sk.splits * (kFloats / 4) * kThreads, sk.splits, split, tid, acc, flag, sync, [&] {
        const bool last = mma::atomic_add_acq_rel(sk.counters + tile, 1) == sk.splits - 1;
        if (last) sk.counters[tile] = 0;  // every split has arrived: nobody else touches it in this launch
        return last;
      });
}

}  // namespace slimops::cuda::wo_mma
