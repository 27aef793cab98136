// Host side of split-K for the tensor-core weight-only GEMMs (wo_gemm_mma.cu,
// wo_gemm_wgmma.cu): how many blocks share an output tile, the workspace
// they need, and how many blocks of a kernel the device holds at once.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../../common/wo_gemm_params.h"
#include "../common/env_knob.h"
#include "../common/split_k_waves.h"

namespace slimops::cuda::split_k_plan {

// Split-K bounds: each split keeps enough stages to fill and drain its
// pipeline, and the partials stay a small fraction of the weight bytes.
// With 4 stages a split, int4 4096^2 at M = 1-2 (32 stages) split 7 ways
// ran 13.2-13.5 us; with 8 (4 splits) 12.2-12.3 us, H100; no other shape
// or M of the benchmark changed (bench/results/wo_gemm_min_iters_h100.md).
constexpr int kMaxSplits = 16;
constexpr int kMinItersPerSplit = 8;
// What one split's partial write, count-in and share of the final sum cost,
// in main-loop iterations.
constexpr int kReduceCostIters = 2;
// A block's fixed cost in iterations (filling its pipeline, storing its
// tile), once the tiles fill a wave. Without it the model split 448 tiles of
// 64 stages 2 ways (7 waves of 32) rather than not at all (4 waves of 64);
// with 8, H100 wgmma kernel: 1.19-1.29x at M = 128 on 8192x28672, 1.26x at
// M = 1024 on 4096x14336 (int4), 1.29x at M = 256 on 8192x28672 (int8), no
// row slower (bench/results/wo_gemm_tile_block_cost_h100.md).
constexpr int kBlockCostIters = 8;
// Blocks per SM that saturate memory at small M (see make_plan).
constexpr double kBlocksPerSm = 1.5;
constexpr int kMaxDevices = 64;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline size_t round_up_256(size_t v) { return (v + 255) / 256 * 256; }

struct Plan {
  int64_t tiles_m = 0;
  int64_t tiles_n = 0;
  int iters = 0;
  int iters_per_split = 0;
  int splits = 1;
  size_t counter_bytes = 0;   // split-K arrival counters, zeroed per launch
  size_t lowrank_bytes = 0;   // the correction's arrival counter and t, zeroed per launch
  size_t workspace_bytes = 0;
};

// Split-K count, fitted to H100 sweeps of the mma.sync kernel (bf16, int4
// g128 and int8 per channel, the five benchmark shapes, M = 1..128). While
// the output tiles fit in one wave of resident blocks the kernel is bound by
// the bytes it streams: split until about kBlocksPerSm blocks per SM (more
// blocks only add partials and prologues), never past one wave (a second,
// partial wave cost up to 30%). Once the tiles fill a wave, take the fewest
// of waves x (iterations per split + a block's fixed cost + the
// reduction's share).
// rank > 0: a low-rank correction adds one producer block per tile
// (lowrank_correction.cuh) that counts as one more partial.
// Sweep knobs, read per call: SLIMOPS_WO_BLOCK_COST sets kBlockCostIters,
// SLIMOPS_WO_MIN_ITERS kMinItersPerSplit;
// SLIMOPS_WO_SPLITS forces the split count of calls without a correction
// (whose launcher needs the whole grid resident).
inline Plan make_plan(const WoGemmParams& p, int64_t rank, int bm, int bn, int stage_k, int64_t sms, int64_t slots) {
  Plan pl;
  pl.tiles_m = ceil_div(p.m, bm);
  pl.tiles_n = ceil_div(p.n, bn);
  pl.iters = int(ceil_div(p.k, stage_k));
  const int64_t tiles = pl.tiles_m * pl.tiles_n;
  const int min_iters = std::max(1, env_int("SLIMOPS_WO_MIN_ITERS", kMinItersPerSplit));
  const int max_splits = std::max(1, std::min(kMaxSplits, pl.iters / min_iters));
  int splits = 1;
  // With the same number of blocks as without it the fused low-rank kernel
  // ran 1.06x plain int4's time at M = 1 (H100, 8192^2, r = 64), with one
  // more split 1.13x (bench/NOTES.md).
  const int64_t producer_slices = rank > 0 ? 1 : 0;
  // At least one slot left (the cost model divides by it); such a grid does
  // not fit at once, and the low-rank launcher refuses it.
  slots = std::max<int64_t>(1, slots - producer_slices * tiles);
  if (tiles < slots) {
    const auto wanted = int64_t(std::ceil(kBlocksPerSm * double(sms) / double(tiles))) - producer_slices;
    splits = int(std::max<int64_t>(1, std::min(wanted, slots / tiles)));
  } else {
    splits = fewest_waves_splits(tiles, slots, pl.iters, max_splits, kReduceCostIters,
                                 env_int("SLIMOPS_WO_BLOCK_COST", kBlockCostIters));
  }
  if (rank == 0) splits = env_int("SLIMOPS_WO_SPLITS", splits);
  splits = std::max(1, std::min(splits, max_splits));
  // Equal shares of whole stages; no split left empty.
  pl.iters_per_split = int(ceil_div(pl.iters, splits));
  pl.splits = int(ceil_div(pl.iters, pl.iters_per_split));
  // Partials per tile: the k-ranges, and the low-rank correction's.
  const int partials = pl.splits + (rank > 0 ? 1 : 0);
  if (partials > 1) pl.counter_bytes = round_up_256(size_t(tiles) * sizeof(int));
  if (rank > 0) pl.lowrank_bytes = 256 + round_up_256(size_t(p.m) * size_t(rank) * sizeof(float));
  pl.workspace_bytes = pl.counter_bytes + pl.lowrank_bytes;
  if (partials > 1) pl.workspace_bytes += size_t(tiles) * partials * bm * bn * sizeof(float);
  return pl;
}

// SMs and resident blocks (SMs x occupancy) of the current device for one
// kernel; zero if it cannot run there: a compute capability major below
// required_major, or other than it when exact_major (sm_90a code runs on
// 9.x only). Queried once per device and Tag (one Tag per kernel instance:
// kernels of one signature share a function pointer type); the launch relies
// on the shared-memory opt-in made here.
struct Capacity {
  int64_t sms = 0, slots = 0;
};

template <typename Tag, typename Kernel>
Capacity kernel_capacity(Kernel kernel, int threads, size_t smem_bytes, int required_major, bool exact_major) {
  static std::atomic<int64_t> cache[kMaxDevices][2];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  if (dev < kMaxDevices) {
    const int64_t v = cache[dev][1].load(std::memory_order_relaxed);
    if (v != 0) return v > 0 ? Capacity{cache[dev][0].load(std::memory_order_relaxed), v} : Capacity{};
  }
  int sms = 0, per_sm = 0, major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    sms = 0;
  }
  const bool arch_ok = exact_major ? major == required_major : major >= required_major;
  if (sms > 0 && arch_ok &&
      (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes)) != cudaSuccess ||
       cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem_bytes) != cudaSuccess)) {
    cudaGetLastError();  // leave no error behind for the fallback path to trip on
    per_sm = 0;
  }
  if (!arch_ok) per_sm = 0;
  const Capacity c{sms, int64_t(sms) * per_sm};
  if (dev < kMaxDevices) {
    cache[dev][0].store(c.sms, std::memory_order_relaxed);
    cache[dev][1].store(c.slots > 0 ? c.slots : -1, std::memory_order_relaxed);
  }
  return c.slots > 0 ? c : Capacity{};
}

}  // namespace slimops::cuda::split_k_plan
