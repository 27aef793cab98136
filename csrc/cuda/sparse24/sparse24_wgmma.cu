// Launcher of the Hopper 2:4 sparse GEMM (kernel and design in
// sparse24_wgmma_kernel.cuh): which tile serves which M, split-K, and the
// entry points declared in sparse24_launcher.h.
//
// Constraints (sparse24_wgmma_applies; outside them the caller takes the
// mma.sp kernel): what sparse24_applies needs, plus 16-bit kept values
// (bits = 16), a compute capability 9.x device (the code is sm_90a), and
// fewer than 2^31 output tiles.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "../../common/static_switch.h"
#include "../common/tensor_map.h"
#include "sparse24_dispatch.cuh"
#include "sparse24_launcher.h"
#include "sparse24_wgmma_kernel.cuh"

namespace slimops::cuda {
namespace {

using s24_wgmma::Tile;

// Tokens per tile, layout tiles (64 k) per stage, stages (as many as fit in
// 227 KiB), blocks per cluster sharing x. One layout tile per stage, so any
// K (a multiple of 64) divides into whole stages.
template <int kCluster>
using TileT64 = Tile<64, 1, 12, kCluster>;
template <int kCluster>
using TileT128 = Tile<128, 1, 8, kCluster>;
template <int kCluster>
using TileT256 = Tile<256, 1, 5, kCluster>;

template <typename T, typename Cfg>
struct WgmmaKernel {
  static constexpr size_t kSmemBytes = s24_wgmma::Smem<Cfg>::kBytes;
  static_assert(kSmemBytes <= 232448, "an H100 block has 227 KiB of shared memory");

  static constexpr int kC = Cfg::kCluster;

  static cudaLaunchConfig_t launch_config(unsigned blocks, unsigned splits, cudaStream_t stream,
                                          cudaLaunchAttribute* attr) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(blocks, splits);
    cfg.blockDim = dim3(s24_wgmma::kThreads);
    cfg.dynamicSmemBytes = kSmemBytes;
    cfg.stream = stream;
    attr->id = cudaLaunchAttributeClusterDimension;
    attr->val.clusterDim.x = kC;
    attr->val.clusterDim.y = 1;
    attr->val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cfg;
  }

  // Resident blocks on the current device, whole clusters (0: it cannot run
  // the kernel). Queried once per device; the launch relies on the opt-in
  // made here.
  static int64_t slots() {
    static std::atomic<int64_t> cache[s24::kMaxDevices];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    if (dev < s24::kMaxDevices) {
      const int64_t v = cache[dev].load(std::memory_order_relaxed);
      if (v != 0) return std::max<int64_t>(v, 0);
    }
    int major = 0, clusters = 0;
    const auto kernel = s24_wgmma::sparse24_wgmma_kernel<T, Cfg>;
    cudaLaunchAttribute attr;
    const cudaLaunchConfig_t cfg = launch_config(kC, 1, nullptr, &attr);
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess || major != 9 ||
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmemBytes)) != cudaSuccess ||
        cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) != cudaSuccess) {
      cudaGetLastError();  // leave no error behind for the fallback path
      clusters = 0;
    }
    const int64_t v = int64_t(clusters) * kC;
    if (dev < s24::kMaxDevices) cache[dev].store(v > 0 ? v : -1, std::memory_order_relaxed);
    return v;
  }

  // Split-K over the clusters' output tiles (kC blocks' W rows each) and
  // resident clusters; the workspace holds every block's tile.
  static s24::Plan plan(const Sparse24Params& p) {
    s24::Plan pl = s24::make_plan(p, s24_wgmma::kBW * kC, Cfg::kBT, Cfg::kKT * s24::kTileK,
                                  std::max<int64_t>(1, slots() / kC));
    pl.tiles_w *= kC;
    if (pl.splits > 1) {
      const int64_t tiles = pl.tiles_w * pl.tiles_t;
      pl.counter_bytes = size_t(s24::ceil_div(tiles * int64_t(sizeof(uint64_t)), 256) * 256);
      pl.workspace_bytes = pl.counter_bytes + size_t(tiles) * pl.splits * s24_wgmma::kBW * Cfg::kBT * sizeof(float);
    }
    return pl;
  }

  static bool applies(const Sparse24Params& p) { return slots() > 0 && p.k % (Cfg::kKT * s24::kTileK) == 0; }

  // The copy engine's views: x, each block fetching (and multicasting) 1/kC
  // of the box; the values and metadata as rows of layout tiles (N / 16
  // rows of K / 64 tiles, 32-bit words).
  static bool make_maps(const Sparse24Params& p, s24_wgmma::TensorMaps& maps) {
    namespace tm = tensor_map;
    const uint64_t tile_rows = uint64_t(p.n / s24::kTileRows), ktiles = uint64_t(p.k / s24::kTileK);
    constexpr uint32_t kValWords = s24_wgmma::kValTileBytes / 4, kMetaWords = s24_wgmma::kMetaTileBytes / 4;
    return tm::encode_2d(&maps.x, CU_TENSOR_MAP_DATA_TYPE_UINT16, p.x, uint64_t(p.k), uint64_t(p.m),
                         uint64_t(p.x_row_stride) * 2, s24::kTileK, Cfg::kBT / kC, CU_TENSOR_MAP_SWIZZLE_128B) &&
           tm::encode_2d(&maps.values, CU_TENSOR_MAP_DATA_TYPE_UINT32, p.values, ktiles * kValWords, tile_rows,
                         ktiles * s24_wgmma::kValTileBytes, kValWords, s24_wgmma::kTilesW, CU_TENSOR_MAP_SWIZZLE_NONE) &&
           tm::encode_2d(&maps.meta, CU_TENSOR_MAP_DATA_TYPE_UINT32, p.meta, ktiles * kMetaWords, tile_rows,
                         ktiles * s24_wgmma::kMetaTileBytes, kMetaWords, s24_wgmma::kTilesW, CU_TENSOR_MAP_SWIZZLE_NONE);
  }

  static Status launch(const Sparse24Params& p, void* workspace, cudaStream_t stream) {
    if (!applies(p)) return Status::kUnsupported;
    s24_wgmma::TensorMaps maps;
    if (!make_maps(p, maps)) return Status::kUnsupported;
    const s24::Plan pl = plan(p);
    s24::SplitK sk{pl.iters, pl.iters_per_split, pl.splits, nullptr, nullptr, 0};
    if (pl.splits > 1) {
      if (workspace == nullptr || (reinterpret_cast<uintptr_t>(workspace) & 15u) != 0) return Status::kInvalidArgument;
      sk.counters = static_cast<uint64_t*>(workspace);
      sk.partials = reinterpret_cast<float4*>(static_cast<uint8_t*>(workspace) + pl.counter_bytes);
      sk.tag = split_k::next_launch_tag();
    }
    cudaLaunchAttribute attr;
    const cudaLaunchConfig_t cfg = launch_config(unsigned(pl.tiles_w * pl.tiles_t), unsigned(pl.splits), stream, &attr);
    return cudaLaunchKernelEx(&cfg, s24_wgmma::sparse24_wgmma_kernel<T, Cfg>, p, sk, maps) == cudaSuccess
               ? Status::kOk
               : Status::kCudaError;
  }
};

// Tokens per tile and blocks per cluster: the kernel instances.
struct TileChoice {
  int tokens, cluster;
};
constexpr TileChoice kTiles[] = {{64, 1}, {128, 1}, {256, 1}, {256, 2}, {256, 4}};

template <typename T, typename Fn>
auto with_tile(TileChoice c, Fn&& fn) {
  if (c.tokens == 64) return fn(WgmmaKernel<T, TileT64<1>>{});
  if (c.tokens == 128) return fn(WgmmaKernel<T, TileT128<1>>{});
  if (c.cluster == 1) return fn(WgmmaKernel<T, TileT256<1>>{});
  return c.cluster == 2 ? fn(WgmmaKernel<T, TileT256<2>>{}) : fn(WgmmaKernel<T, TileT256<4>>{});
}

// The tile for M, measured on H100: per M, the tile with the best geometric
// mean speedup over the three benchmark shapes (bench/results/s24_wgmma_sweep_h100_run{3,4}.md).
// Which one wins at a shape is mostly how full the last round of resident
// blocks is, and 4-block clusters are fewer (~30 resident): they win where
// the grid fills its rounds (M = 256: 0.98-1.45x against 0.92-1.26x for
// single blocks; M = 4096: 1.22-1.36x against 1.17-1.24x) and lose by up
// to 2x where it does not (M = 512 on 8192^2). SLIMOPS_S24_WGMMA_BT (64, 128
// or 256) and SLIMOPS_S24_WGMMA_CLUSTER (1, 2 or 4; 256 tokens only) force a
// tile, for sweeps (read per call).
TileChoice choose_tile(int64_t m) {
  const char* bt = std::getenv("SLIMOPS_S24_WGMMA_BT");
  if (bt != nullptr && *bt != 0) {
    const char* cl = std::getenv("SLIMOPS_S24_WGMMA_CLUSTER");
    const int tokens = std::atoi(bt), cluster = cl ? std::atoi(cl) : 1;
    for (const TileChoice c : kTiles)
      if (c.tokens == tokens && c.cluster == cluster) return c;
  }
  if (m <= 64) return {64, 1};
  if (m <= 128) return {128, 1};
  if (m <= 384) return {256, 4};
  if (m <= 1536) return {128, 1};
  if (m <= 3072) return {256, 2};
  return {256, 4};
}

// dtype x tile: 10 instances.
template <typename Fn>
auto dispatch(const Sparse24Params& p, Fn&& fn) {
  return BOOL_SWITCH(p.dtype == DType::kBFloat16, kBf16, [&] {
    using T = std::conditional_t<kBf16, __nv_bfloat16, __half>;
    return with_tile<T>(choose_tile(p.m), fn);
  });
}

}  // namespace

bool sparse24_wgmma_applies(const Sparse24Params& p) {
  if (!sparse24_applies(p) || p.bits != 16) return false;
  // One grid dimension holds all output tiles (64 tokens at least).
  if (s24::ceil_div(p.n, s24_wgmma::kBW) * s24::ceil_div(p.m, 64) > 0x7fffffff) return false;
  return dispatch(p, [&](auto kernel) { return decltype(kernel)::applies(p); });
}

size_t sparse24_wgmma_workspace_bytes(const Sparse24Params& p) {
  if (!sparse24_wgmma_applies(p)) return 0;
  return dispatch(p, [&](auto kernel) { return decltype(kernel)::plan(p).workspace_bytes; });
}

Status sparse24_wgmma_cuda(const Sparse24Params& p, void* workspace, cudaStream_t stream) {
  if (!sparse24_wgmma_applies(p)) return Status::kUnsupported;
  if (p.out == nullptr) return Status::kInvalidArgument;
  return dispatch(p, [&](auto kernel) { return decltype(kernel)::launch(p, workspace, stream); });
}

}  // namespace slimops::cuda
