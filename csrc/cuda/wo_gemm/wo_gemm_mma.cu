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

#include <cstdint>

#include "split_k_plan.h"
#include "weight_type_switch.h"
#include "wo_gemm_launcher.h"
#include "wo_gemm_mma_kernel.cuh"

namespace slimops::cuda {
namespace {

using split_k_plan::Capacity;
using split_k_plan::ceil_div;
using split_k_plan::Plan;
using wo_mma::Format;
using wo_mma::LowRankCorrectionArgs;
using wo_mma::Smem;
using wo_mma::SplitK;
using wo_mma::Tile;
using wo_mma::wo_gemm_mma_kernel;

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

template <typename T, int kBits, typename Cfg, bool kZeros, bool kLowRank>
struct MmaKernel {
  static constexpr size_t kSmemBytes = Smem<Cfg, kBits>::kBytes;

  static Capacity capacity() {
    return split_k_plan::kernel_capacity<MmaKernel>(wo_gemm_mma_kernel<T, kBits, Cfg, kZeros, kLowRank>, Cfg::kThreads,
                                                    kSmemBytes, 8, false);
  }

  static Plan plan(const WoGemmParams& p, int64_t rank) {
    const Capacity c = capacity();
    return split_k_plan::make_plan(p, rank, Cfg::kBM, Cfg::kBN, Format<kBits>::kStageK, c.sms, c.slots);
  }

  // The correction's producers wait for each other (lowrank_correction.cuh):
  // only one M tile, and a grid (splits + a slice of producers) that is
  // resident all at once.
  static bool fuses(const WoGemmParams& p, int64_t rank) {
    const Plan pl = plan(p, rank);
    return pl.tiles_m == 1 && pl.tiles_m * pl.tiles_n * (pl.splits + 1) <= capacity().slots;
  }

  static Status launch(const WoGemmParams& p, const LowRankCorrection& lrc, void* workspace, cudaStream_t stream,
                       SplitKCounters counters) {
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
      // The workspace comes uninitialised: counters and t start at 0. The
      // caller's zeroed counters, where it has enough, spare the memset of
      // the counters (t is the low-rank kernels' alone).
      const int64_t tiles = pl.tiles_m * pl.tiles_n;
      const bool callers_counters = !kLowRank && counters.zeroed != nullptr && size_t(tiles) <= counters.count;
      if (callers_counters) sk.counters = counters.zeroed;
      const size_t zeroed = callers_counters ? 0 : pl.counter_bytes + pl.lowrank_bytes;
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
  return weight_type_switch(p, [&](auto type, auto bits, auto zeros) {
    using T = typename decltype(type)::type;
    constexpr int kBits = decltype(bits)::value;
    constexpr bool kZeros = decltype(zeros)::value;
    if (p.m <= TileM8::kBM) return fn(MmaKernel<T, kBits, TileM8, kZeros, kLowRank>{});
    if constexpr (kLowRank) {
      return fn(MmaKernel<T, kBits, TileM16, kZeros, true>{});
    } else {
      if (p.m <= TileM16::kBM) return fn(MmaKernel<T, kBits, TileM16, kZeros, false>{});
      if (p.m <= TileM32::kBM) return fn(MmaKernel<T, kBits, TileM32, kZeros, false>{});
      return fn(MmaKernel<T, kBits, TileM64, kZeros, false>{});
    }
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

Status wo_gemm_mma_cuda(const WoGemmParams& p, void* workspace, cudaStream_t stream, SplitKCounters counters) {
  if (!wo_gemm_mma_applies(p)) return Status::kUnsupported;
  if (p.out == nullptr) return Status::kInvalidArgument;
  return dispatch<false>(
      p, [&](auto kernel) { return decltype(kernel)::launch(p, LowRankCorrection{}, workspace, stream, counters); });
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
  return dispatch<true>(p, [&](auto kernel) { return decltype(kernel)::launch(p, lr, workspace, stream, {}); });
}

}  // namespace slimops::cuda
