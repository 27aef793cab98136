// Launcher of the tensor-core weight-only GEMM (kernel and design in
// wo_gemm_mma_kernel.cuh): which tile serves which M, how many split-K
// blocks per output tile, the device's capacity, and the entry points of
// wo_gemm_launcher.h.
//
// Constraints (wo_gemm_mma_applies; outside them the caller falls back):
//   - bits 4 or 8, x fp16 or bf16, K % group_size == 0;
//   - int4: K and group_size multiples of 32 (the packing block);
//     int8: multiples of 16 (one 16-byte chunk shares one scale);
//   - x and qweight 16-byte aligned, x_row_stride a multiple of 8 elements;
//   - any M >= 1 and N >= 1 (tails are masked; N < 65536 * 128), K < 2^30.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../../common/static_switch.h"
#include "wo_gemm_launcher.h"
#include "wo_gemm_mma_kernel.cuh"

namespace slimops::cuda {
namespace {

using wo_mma::Format;
using wo_mma::LowRankCorrectionArgs;
using wo_mma::Smem;
using wo_mma::SplitK;
using wo_mma::Tile;
using wo_mma::wo_gemm_mma_kernel;

// Split-K bounds: each split keeps at least a few stages to pipeline, and
// the partials stay a small fraction of the weight bytes.
constexpr int kMaxSplits = 16;
constexpr int kMinItersPerSplit = 4;
// What one split's partial write, count-in and share of the final sum cost,
// in main-loop iterations.
constexpr int kReduceCostIters = 2;
// Blocks per SM that saturate memory at small M (see make_plan).
constexpr double kBlocksPerSm = 1.5;
constexpr int kMaxDevices = 64;

// Per M bucket, 128 output columns a block. A warp dequantises its own 32
// columns and reads all of x it needs from shared memory, so up to 32 rows
// one warp row covers x; at 64 rows two warp rows halve each warp's x reads
// and mma chain at the price of dequantising each weight twice.
using TileM8 = Tile<2, 1, 4, 1, 4, 3, true>;    // 128 threads, 8 x 128
using TileM16 = Tile<2, 2, 4, 1, 4, 3, true>;   // 128 threads, 16 x 128
using TileM32 = Tile<2, 4, 4, 1, 4, 2, true>;   // 128 threads, 32 x 128
using TileM64 = Tile<2, 4, 4, 2, 4, 2, false>;  // 256 threads, 64 x 128; also M > 64, tiled
constexpr int64_t kTileN = 128;
static_assert(TileM8::kBN == kTileN && TileM16::kBN == kTileN && TileM32::kBN == kTileN && TileM64::kBN == kTileN,
              "shape_applies bounds the N tiles with kTileN");

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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

size_t round_up_256(size_t v) { return (v + 255) / 256 * 256; }

// Split-K count, fitted to H100 sweeps (bf16, int4 g128 and int8 per
// channel, the five benchmark shapes, M = 1..128). While the output tiles
// fit in one wave of resident blocks the kernel is bound by the bytes it
// streams: split until about kBlocksPerSm blocks per SM (more blocks only
// add partials and prologues), never past one wave (a second, partial wave
// cost up to 30%). Once the tiles fill a wave, take the fewest of
// waves x (iterations per split + the reduction's share).
Plan make_plan(const WoGemmParams& p, int64_t rank, int bm, int bn, int stage_k, int64_t sms, int64_t slots) {
  Plan pl;
  pl.tiles_m = ceil_div(p.m, bm);
  pl.tiles_n = ceil_div(p.n, bn);
  pl.iters = int(ceil_div(p.k, stage_k));
  const int64_t tiles = pl.tiles_m * pl.tiles_n;
  const int max_splits = std::max(1, std::min(kMaxSplits, pl.iters / kMinItersPerSplit));
  int splits = 1;
  // A low-rank correction adds one block per tile that computes it
  // (lowrank_correction.cuh), resident with the rest, and counts as a split:
  // with the same number of blocks as without it the fused kernel ran 1.06x
  // plain int4's time at M = 1 (H100, 8192^2, r = 64), with one more split
  // 1.13x (bench/NOTES.md).
  const int64_t producer_slices = rank > 0 ? 1 : 0;
  // At least one slot left (the cost model divides by it); such a grid does
  // not fit at once, so MmaKernel::fuses says no.
  slots = std::max<int64_t>(1, slots - producer_slices * tiles);
  if (tiles < slots) {
    const auto wanted = int64_t(std::ceil(kBlocksPerSm * double(sms) / double(tiles))) - producer_slices;
    splits = int(std::max<int64_t>(1, std::min(wanted, slots / tiles)));
  } else {
    int64_t best = std::numeric_limits<int64_t>::max();
    for (int s = 1; s <= max_splits; ++s) {
      const int64_t cost = ceil_div(tiles * s, slots) * (ceil_div(pl.iters, s) + (s > 1 ? kReduceCostIters : 0));
      if (cost < best) {
        best = cost;
        splits = s;
      }
    }
  }
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

template <typename T, int kBits, typename Cfg, bool kZeros, bool kLowRank>
struct MmaKernel {
  static constexpr size_t kSmemBytes = Smem<Cfg, kBits>::kBytes;

  // SMs and resident blocks (SMs x occupancy) of the current device; zero
  // blocks if this kernel cannot run there. Queried once per device: the
  // launch also relies on the shared-memory opt-in made here.
  struct Capacity {
    int64_t sms = 0, slots = 0;
  };
  static Capacity capacity() {
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
    const auto kernel = wo_gemm_mma_kernel<T, kBits, Cfg, kZeros, kLowRank>;
    int sms = 0, per_sm = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmemBytes)) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, Cfg::kThreads, kSmemBytes) != cudaSuccess) {
      cudaGetLastError();  // leave no error behind for the fallback path to trip on
      sms = per_sm = 0;
    }
    const Capacity c{sms, int64_t(sms) * per_sm};
    if (dev < kMaxDevices) {
      cache[dev][0].store(c.sms, std::memory_order_relaxed);
      cache[dev][1].store(c.slots > 0 ? c.slots : -1, std::memory_order_relaxed);
    }
    return c.slots > 0 ? c : Capacity{};
  }

  static Plan plan(const WoGemmParams& p, int64_t rank) {
    const Capacity c = capacity();
    return make_plan(p, rank, Cfg::kBM, Cfg::kBN, Format<kBits>::kStageK, c.sms, c.slots);
  }

  // The correction's producers wait for each other (lowrank_correction.cuh):
  // only one M tile, and a grid (splits + a slice of producers) that is
  // resident all at once.
  static bool fuses(const WoGemmParams& p, int64_t rank) {
    const Plan pl = plan(p, rank);
    return pl.tiles_m == 1 && pl.tiles_m * pl.tiles_n * (pl.splits + 1) <= capacity().slots;
  }

  static Status launch(const WoGemmParams& p, const LowRankCorrection& lrc, void* workspace, cudaStream_t stream) {
    const Plan pl = plan(p, kLowRank ? lrc.rank : 0);
    const int partials = pl.splits + (kLowRank ? 1 : 0);
    SplitK sk{pl.iters, pl.iters_per_split, partials, nullptr, nullptr};
    LowRankCorrectionArgs lr;
    if (pl.workspace_bytes > 0) {
      if (workspace == nullptr || (reinterpret_cast<uintptr_t>(workspace) & 15u) != 0) return Status::kInvalidArgument;
      auto* ws = static_cast<uint8_t*>(workspace);
      if (partials > 1) {
        sk.counters = reinterpret_cast<int*>(ws);
        sk.partials = reinterpret_cast<float4*>(ws + pl.counter_bytes + pl.lowrank_bytes);
      }
      if constexpr (kLowRank) {
        if (!fuses(p, lrc.rank)) return Status::kUnsupported;
        lr = LowRankCorrectionArgs{lrc.a, lrc.b, int(lrc.rank),
                                   reinterpret_cast<float*>(ws + pl.counter_bytes + 256),
                                   reinterpret_cast<int*>(ws + pl.counter_bytes)};
      }
      // The workspace comes uninitialised: counters and t start at 0.
      const size_t zeroed = pl.counter_bytes + pl.lowrank_bytes;
      if (zeroed > 0 && cudaMemsetAsync(workspace, 0, zeroed, stream) != cudaSuccess) return Status::kCudaError;
    }
    const dim3 grid(unsigned(pl.tiles_m), unsigned(pl.tiles_n), unsigned(partials));
    wo_gemm_mma_kernel<T, kBits, Cfg, kZeros, kLowRank><<<grid, Cfg::kThreads, kSmemBytes, stream>>>(p, sk, lr);
    return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
  }
};

// dtype x bits x zero points x M bucket: 32 instances; with the low-rank
// correction (kLowRank), M <= kLowRankMaxM only (one M tile of the two
// smallest buckets): 16 more.
constexpr int64_t kLowRankMaxM = TileM16::kBM;
template <bool kLowRank, typename Fn>
auto dispatch(const WoGemmParams& p, Fn&& fn) {
  return BOOL_SWITCH(p.x_dtype == DType::kBFloat16, kBf16, [&] {
    using T = std::conditional_t<kBf16, __nv_bfloat16, __half>;
    return BOOL_SWITCH(p.bits == 4, kInt4, [&] {
      constexpr int kBits = kInt4 ? 4 : 8;
      return BOOL_SWITCH(p.zeros != nullptr, kZeros, [&] {
        if (p.m <= TileM8::kBM) return fn(MmaKernel<T, kBits, TileM8, kZeros, kLowRank>{});
        if constexpr (kLowRank) {
          return fn(MmaKernel<T, kBits, TileM16, kZeros, true>{});
        } else {
          if (p.m <= TileM16::kBM) return fn(MmaKernel<T, kBits, TileM16, kZeros, false>{});
          if (p.m <= TileM32::kBM) return fn(MmaKernel<T, kBits, TileM32, kZeros, false>{});
          return fn(MmaKernel<T, kBits, TileM64, kZeros, false>{});
        }
      });
    });
  });
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

// Everything but the device's ability to run the kernel.
bool shape_applies(const WoGemmParams& p) {
  if (p.bits != 4 && p.bits != 8) return false;
  if (p.x_dtype != DType::kFloat16 && p.x_dtype != DType::kBFloat16) return false;
  if (p.m < 1 || p.n < 1 || p.k < 1 || p.group_size < 1 || p.k % p.group_size != 0) return false;
  const int64_t chunk_k = p.bits == 4 ? 32 : 16;
  if (p.k % chunk_k != 0 || p.group_size % chunk_k != 0) return false;
  // 32-bit chunk indices along K; grid.x holds the M tiles (8 rows at
  // least), grid.y the N tiles.
  if (p.k > (int64_t(1) << 30) || ceil_div(p.m, 8) > 0x7fffffff || ceil_div(p.n, kTileN) > 65535) return false;
  if (p.x_row_stride < p.k || p.x_row_stride % 8 != 0 || !aligned16(p.x) || !aligned16(p.qweight)) return false;
  if (p.scales == nullptr || p.out_row_stride < p.n) return false;
  return true;
}

}  // namespace

bool wo_gemm_mma_applies(const WoGemmParams& p) {
  return shape_applies(p) && dispatch<false>(p, [](auto kernel) { return decltype(kernel)::capacity().slots > 0; });
}

size_t wo_gemm_mma_workspace_bytes(const WoGemmParams& p) {
  if (!wo_gemm_mma_applies(p)) return 0;
  return dispatch<false>(p, [&](auto kernel) { return decltype(kernel)::plan(p, 0).workspace_bytes; });
}

Status wo_gemm_mma_cuda(const WoGemmParams& p, void* workspace, cudaStream_t stream) {
  if (!wo_gemm_mma_applies(p)) return Status::kUnsupported;
  if (p.out == nullptr) return Status::kInvalidArgument;
  return dispatch<false>(
      p, [&](auto kernel) { return decltype(kernel)::launch(p, LowRankCorrection{}, workspace, stream); });
}

bool wo_gemm_mma_lowrank_applies(const WoGemmParams& p, const LowRankCorrection& lr) {
  if (!shape_applies(p) || p.m > kLowRankMaxM) return false;
  if (lr.rank < 1 || lr.rank % 8 != 0 || lr.rank > 0x7fffffff || !aligned16(lr.a) || !aligned16(lr.b)) return false;
  return dispatch<true>(p, [&](auto kernel) {
    using K = decltype(kernel);
    return K::capacity().slots > 0 && K::fuses(p, lr.rank);
  });
}

size_t wo_gemm_mma_lowrank_workspace_bytes(const WoGemmParams& p, const LowRankCorrection& lr) {
  if (!wo_gemm_mma_lowrank_applies(p, lr)) return 0;
  return dispatch<true>(p, [&](auto kernel) { return decltype(kernel)::plan(p, lr.rank).workspace_bytes; });
}

Status wo_gemm_mma_lowrank_cuda(const WoGemmParams& p, const LowRankCorrection& lr, void* workspace,
                                cudaStream_t stream) {
  if (!wo_gemm_mma_lowrank_applies(p, lr)) return Status::kUnsupported;
  if (p.out == nullptr) return Status::kInvalidArgument;
  return dispatch<true>(p, [&](auto kernel) { return decltype(kernel)::launch(p, lr, workspace, stream); });
}

}  // namespace slimops::cuda
