// Kernel selection and split-K planning of the 2:4 sparse GEMM, shared by
// the translation units that instantiate it (sparse24_gemm.cu: 16-bit
// values; sparse24_int4.cu: int4 values), so that nvcc builds the two
// halves in parallel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "../../common/status.h"
#include "../common/env_knob.h"
#include "../common/split_k_waves.h"
#include "sparse24_kernel.cuh"

namespace slimops::cuda::s24 {

// M buckets. Small M is bound by the bytes of W: warps own W rows only and
// all tokens, stages are deep in k. Large M is bound by shared-memory reads
// per mma: 128 x 128 block tiles, warps 64 W rows x 64 tokens (32 mma.sp
// per 4 A and 8 B fragment loads a k32 step).
//
// Measured on H100 (tools/harness, bench/NOTES.md): for int4 values at
// small M, 128-row blocks (TileS4) beat 64-row ones by up to 12%, while
// deeper stages (512 k, 4 stages, 1 block/SM) were 1.3-1.7x slower; at
// M <= 64, 8 warps (256 W rows, 1 block/SM) lost 3-12% to TileM; 64 x 64 warp tiles
// beat 64 x 32 ones at large M by 5-15%.
using TileS = Tile<4, 1, 1, 2, 256, 4, 2>;  // M <= 16: 64 W rows x 16 tokens, 128 threads
using TileM = Tile<4, 1, 2, 8, 128, 3, 2>;  // M <= 64: 128 W rows x 64 tokens, 128 threads
using TileL = Tile<2, 2, 4, 8, 64, 4, 1>;   // M > 64: 128 W rows x 128 tokens, warps 64 x 64
// int4 values, M <= 16: 128 W rows x 16 tokens (a stage holds 14 KB of W
// instead of 7 KB): 0-12% faster than TileS for int4 on H100 (one shape
// -2% under a read flush).
using TileS4 = Tile<4, 1, 2, 2, 256, 4, 2>;
// int4 values, M <= 8: one 8-token tile (half the ldmatrix and mma of
// TileS4, 18 KB stages, 3 blocks per SM), row scales applied to the fp32
// partial sums (Tile::kPostScale) and copies planned once (StageLoader).
// Against TileS4, same process on H100 (bench/results/sparse24_int4_small_m_h100.md):
// 1.03-1.54x at M = 1 and 8 on four shapes; 1.02-1.44x at M = 1 against
// session 11's kernel (another process).
using TileS4One = Tile<4, 1, 2, 1, 256, 4, 3, true>;
// Experiments at M <= 8, forced by SLIMOPS_S24_SMALL_TILE (read per call):
// 1: TileS4One's shape without post-scaling; 2: the same, 3 stages and 4
// blocks per SM; 3: 256 W rows of 8 tokens, 128-k stages; 5: TileS4,
// post-scaled; 6: TileS4 (the kernel before TileS4One).
using TileS4x1 = Tile<4, 1, 2, 1, 256, 4, 3>;
using TileS4x2 = Tile<4, 1, 2, 1, 256, 3, 4>;
using TileS4x3 = Tile<4, 1, 4, 1, 128, 4, 3>;
using TileS4x5 = Tile<4, 1, 2, 2, 256, 4, 2, true>;  // also the default at M = 9..16
// Experiment at M = 17..64 (SLIMOPS_S24_SMALL_TILE=7, int4): TileM's 128
// W rows x 64 tokens, post-scaled with planned copies, against the wgmma
// kernel there; 8 warps (4 x 2) because TileM's 4 warps of 64 tokens spill
// with the fp32 partials (255 registers).
using TileM4x7 = Tile<4, 2, 2, 4, 128, 3, 2, true>;

inline int small_tile_experiment() {
  const char* v = std::getenv("SLIMOPS_S24_SMALL_TILE");
  return v != nullptr ? std::atoi(v) : 0;
}

constexpr int kMaxSplits = 16;
static_assert(kMaxSplits <= split_k::kMaxArrivals, "arrivals fit the counter word");
constexpr int kMinItersPerSplit = 2;
constexpr int kReduceCostIters = 2;
// A block's fixed cost in stages: filling its pipeline (the first copies'
// latency) and storing its tile. Without it the wave model split 224 tiles
// of 128 stages 4 ways (7 waves of 32) rather than not at all (2 waves of
// 128), and so on; with 8, 1.30-1.39x at M = 128 on 8192x28672 and M = 4096
// on 4096^2, 1.20-1.27x at M = 512 on 4096x14336, no row slower
// (bench/results/sparse24_block_cost_h100.md).
constexpr int kBlockCostIters = 8;
constexpr int kMaxDevices = 64;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Plan {
  int64_t tiles_w = 0, tiles_t = 0;
  int iters = 0, iters_per_split = 0, splits = 1;
  size_t counter_bytes = 0, workspace_bytes = 0;
};

// Sweep knobs, read per call (unset: the model's choice): SLIMOPS_S24_SPLITS
// forces the split count, SLIMOPS_S24_BLOCK_COST sets the model's fixed cost
// of a block in stages (kBlockCostIters).
//
// While the output tiles leave resident-block slots empty, split K until
// they are (about) all used: at small M every block streams W at the rate
// one SM can pull, so idle slots are lost bandwidth. Once the tiles fill a
// wave, take the fewest waves x (iterations per split + a block's fixed
// cost + the reduction).
inline Plan make_plan(const Sparse24Params& p, int bw, int bt, int stage_k, int64_t slots) {
  Plan pl;
  pl.tiles_w = ceil_div(p.n, bw);
  pl.tiles_t = ceil_div(p.m, bt);
  pl.iters = int(ceil_div(p.k, stage_k));
  const int64_t tiles = pl.tiles_w * pl.tiles_t;
  const int max_splits = std::max(1, std::min(kMaxSplits, pl.iters / kMinItersPerSplit));
  int splits = 1;
  if (tiles < slots) {
    splits = int(std::max<int64_t>(1, slots / tiles));
  } else {
    splits = fewest_waves_splits(tiles, slots, pl.iters, max_splits, kReduceCostIters,
                                 env_int("SLIMOPS_S24_BLOCK_COST", kBlockCostIters));
  }
  splits = env_int("SLIMOPS_S24_SPLITS", splits);
  splits = std::max(1, std::min(splits, max_splits));
  pl.iters_per_split = int(ceil_div(pl.iters, splits));
  pl.splits = int(ceil_div(pl.iters, pl.iters_per_split));
  if (pl.splits > 1) {
    pl.counter_bytes = size_t(ceil_div(tiles * int64_t(sizeof(uint64_t)), 256) * 256);
    pl.workspace_bytes = pl.counter_bytes + size_t(tiles) * pl.splits * bw * bt * sizeof(float);
  }
  return pl;
}

template <typename T, int kBits, typename Cfg, bool kZeros>
struct Kernel {
  static constexpr size_t kSmemBytes = Smem<Cfg, kBits, kZeros>::kBytes;

  // Resident blocks per SM on the current device (0: cannot run). Queried
  // once per device: the launch relies on the shared-memory opt-in made here.
  static int blocks_per_sm() {
    static std::atomic<int> cache[kMaxDevices];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    if (dev < kMaxDevices) {
      const int v = cache[dev].load(std::memory_order_relaxed);
      if (v != 0) return std::max(v, 0);
    }
    const auto kernel = sparse24_kernel<T, kBits, Cfg, kZeros>;
    int per_sm = 0;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmemBytes)) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, Cfg::kThreads, kSmemBytes) != cudaSuccess) {
      cudaGetLastError();  // leave no error behind for the fallback path
      per_sm = 0;
    }
    if (dev < kMaxDevices) cache[dev].store(per_sm > 0 ? per_sm : -1, std::memory_order_relaxed);
    return per_sm;
  }

  static Plan plan(const Sparse24Params& p, int num_sms) {
    return make_plan(p, Cfg::kBW, Cfg::kBT, Cfg::kStageK, int64_t(std::max(num_sms, 1)) * blocks_per_sm());
  }

  static Status launch(const Sparse24Params& p, void* workspace, int num_sms, cudaStream_t stream) {
    if (blocks_per_sm() <= 0) return Status::kUnsupported;
    const Plan pl = plan(p, num_sms);
    SplitK sk{pl.iters, pl.iters_per_split, pl.splits, nullptr, nullptr, 0};
    if (pl.splits > 1) {
      if (workspace == nullptr || (reinterpret_cast<uintptr_t>(workspace) & 15u) != 0) return Status::kInvalidArgument;
      sk.counters = static_cast<uint64_t*>(workspace);
      sk.partials = reinterpret_cast<float4*>(static_cast<uint8_t*>(workspace) + pl.counter_bytes);
      sk.tag = split_k::next_launch_tag();
    }
    const dim3 grid(unsigned(pl.tiles_w), unsigned(pl.tiles_t), unsigned(pl.splits));
    sparse24_kernel<T, kBits, Cfg, kZeros><<<grid, Cfg::kThreads, kSmemBytes, stream>>>(p, sk);
    return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
  }
};

// One format (element type x bits x zero points): picks the M bucket and
// either reports the workspace size (ws_bytes != nullptr) or launches.
template <typename T, int kBits, bool kZeros>
Status run_format(const Sparse24Params& p, void* workspace, int num_sms, cudaStream_t stream, size_t* ws_bytes) {
  auto go = [&](auto kernel) {
    using K = decltype(kernel);
    if (ws_bytes != nullptr) {
      *ws_bytes = K::blocks_per_sm() > 0 ? K::plan(p, num_sms).workspace_bytes : 0;
      return K::blocks_per_sm() > 0 ? Status::kOk : Status::kUnsupported;
    }
    return K::launch(p, workspace, num_sms, stream);
  };
  if constexpr (kBits == 4) {
    if (p.m <= 8) {
      switch (small_tile_experiment()) {
        case 1: return go(Kernel<T, kBits, TileS4x1, kZeros>{});
        case 2: return go(Kernel<T, kBits, TileS4x2, kZeros>{});
        case 3: return go(Kernel<T, kBits, TileS4x3, kZeros>{});
        case 5: return go(Kernel<T, kBits, TileS4x5, kZeros>{});
        case 6: return go(Kernel<T, kBits, TileS4, kZeros>{});
        default: return go(Kernel<T, kBits, TileS4One, kZeros>{});
      }
    }
  }
  if (p.m <= TileS::kBT) {
    if constexpr (kBits == 4) {
      // M = 9..16: TileS4 post-scaled with planned copies (1.01-1.57x over
      // TileS4 at M = 12 and 16, same process on H100:
      // bench/results/sparse24_int4_small_m_h100.md); 6 forces TileS4.
      if (small_tile_experiment() == 6) return go(Kernel<T, kBits, TileS4, kZeros>{});
      return go(Kernel<T, kBits, TileS4x5, kZeros>{});
    } else {
      return go(Kernel<T, kBits, TileS, kZeros>{});
    }
  }
  if (p.m <= TileM::kBT) {
    if constexpr (kBits == 4)
      if (small_tile_experiment() == 7) return go(Kernel<T, kBits, TileM4x7, kZeros>{});
    return go(Kernel<T, kBits, TileM, kZeros>{});
  }
  return go(Kernel<T, kBits, TileL, kZeros>{});
}

// Defined (explicitly instantiated) in sparse24_gemm.cu and sparse24_int4.cu.
extern template Status run_format<__half, 16, false>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
extern template Status run_format<__nv_bfloat16, 16, false>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
extern template Status run_format<__half, 4, false>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
extern template Status run_format<__nv_bfloat16, 4, false>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
extern template Status run_format<__half, 4, true>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
extern template Status run_format<__nv_bfloat16, 4, true>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);

}  // namespace slimops::cuda::s24
