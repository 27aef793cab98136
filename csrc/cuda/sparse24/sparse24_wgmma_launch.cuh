// Launch plumbing of the Hopper 2:4 sparse GEMM (kernel and design in
// sparse24_wgmma_kernel.cuh), shared by the translation units that
// instantiate it (sparse24_wgmma.cu: 16-bit values and the entry points;
// sparse24_wgmma_int4.cu: int4 values), so that nvcc builds them in
// parallel: tiles, which tile serves which M, split-K, tensor maps.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "../common/device_sms.h"
#include "../common/tensor_map.h"
#include "sparse24_dispatch.cuh"
#include "sparse24_wgmma_kernel.cuh"

namespace slimops::cuda::s24_wgmma {

// Tokens per tile, layout tiles (64 k) per stage, stages (as many as fit in
// 227 KiB), blocks per cluster sharing x. One layout tile per stage, so any
// K (a multiple of 64) divides into whole stages.
template <int kCluster>
using TileT64 = Tile<64, 1, 12, kCluster>;
template <int kCluster>
using TileT128 = Tile<128, 1, 8, kCluster>;
template <int kCluster>
using TileT256 = Tile<256, 1, 5, kCluster>;

template <typename T, int kBits, bool kZeros, typename Cfg>
struct WgmmaKernel {
  static constexpr size_t kSmemBytes = Smem<Cfg, kBits, kZeros>::kBytes;
  static_assert(kSmemBytes <= 232448, "an H100 block has 227 KiB of shared memory");

  static constexpr int kC = Cfg::kCluster;

  static cudaLaunchConfig_t launch_config(unsigned blocks, unsigned splits, cudaStream_t stream,
                                          cudaLaunchAttribute* attr) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(blocks, splits);
    cfg.blockDim = dim3(kThreads);
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
    const auto kernel = sparse24_wgmma_kernel<T, kBits, kZeros, Cfg>;
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
    s24::Plan pl = s24::make_plan(p, kBW * kC, Cfg::kBT, Cfg::kKT * s24::kTileK,
                                  std::max<int64_t>(1, slots() / kC));
    pl.tiles_w *= kC;
    if (pl.splits > 1) {
      const int64_t tiles = pl.tiles_w * pl.tiles_t;
      pl.counter_bytes = size_t(s24::ceil_div(tiles * int64_t(sizeof(uint64_t)), 256) * 256);
      pl.workspace_bytes = pl.counter_bytes + size_t(tiles) * pl.splits * kBW * Cfg::kBT * sizeof(float);
    }
    return pl;
  }

  // int4: the scales (zero points) come by TMA, in boxes of 4 groups from
  // 16-byte aligned rows.
  static bool applies(const Sparse24Params& p) {
    if (p.k % (Cfg::kKT * s24::kTileK) != 0) return false;
    if constexpr (kBits == 4) {
      const int64_t groups = p.k / p.group_size;
      const auto aligned16 = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; };
      if (groups % kScaleSlots != 0 || !aligned16(p.scales) || (kZeros && !aligned16(p.zeros))) return false;
    }
    return slots() > 0;
  }

  // The copy engine's views: x, each block fetching (and multicasting) 1/kC
  // of the box; the values and metadata as rows of layout tiles (N / 16
  // rows of K / 64 tiles, 32-bit words).
  static bool make_maps(const Sparse24Params& p, TensorMaps& maps) {
    namespace tm = tensor_map;
    const uint64_t tile_rows = uint64_t(p.n / s24::kTileRows), ktiles = uint64_t(p.k / s24::kTileK);
    constexpr uint32_t kValBytes = kValTileBytes<kBits>, kMetaBytes = kMetaTileBytes;
    bool ok = tm::encode_2d(&maps.x, CU_TENSOR_MAP_DATA_TYPE_UINT16, p.x, uint64_t(p.k), uint64_t(p.m),
                            uint64_t(p.x_row_stride) * 2, s24::kTileK, Cfg::kBT / kC, CU_TENSOR_MAP_SWIZZLE_128B) &&
              tm::encode_2d(&maps.values, CU_TENSOR_MAP_DATA_TYPE_UINT32, p.values, ktiles * kValBytes / 4, tile_rows,
                            ktiles * kValBytes, kValBytes / 4, kTilesW, CU_TENSOR_MAP_SWIZZLE_NONE) &&
              tm::encode_2d(&maps.meta, CU_TENSOR_MAP_DATA_TYPE_UINT32, p.meta, ktiles * kMetaBytes / 4, tile_rows,
                            ktiles * kMetaBytes, kMetaBytes / 4, kTilesW, CU_TENSOR_MAP_SWIZZLE_NONE);
    if constexpr (kBits == 4) {
      const uint64_t groups = uint64_t(p.k / p.group_size);
      ok = ok && tm::encode_2d(&maps.scales, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, p.scales, groups, uint64_t(p.n),
                               groups * 4, kScaleSlots, kBW, CU_TENSOR_MAP_SWIZZLE_NONE);
      if constexpr (kZeros)
        ok = ok && tm::encode_2d(&maps.zeros, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, p.zeros, groups, uint64_t(p.n),
                                 groups * 4, kScaleSlots, kBW, CU_TENSOR_MAP_SWIZZLE_NONE);
    }
    return ok;
  }

  static Status launch(const Sparse24Params& p, void* workspace, cudaStream_t stream) {
    if (!applies(p)) return Status::kUnsupported;
    TensorMaps maps;
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
    return cudaLaunchKernelEx(&cfg, sparse24_wgmma_kernel<T, kBits, kZeros, Cfg>, p, sk, maps) == cudaSuccess
               ? Status::kOk
               : Status::kCudaError;
  }
};

// Tokens per tile and blocks per cluster: the kernel instances.
struct TileChoice {
  int tokens, cluster;
};
constexpr TileChoice kTiles[] = {{64, 1}, {64, 2}, {64, 4}, {128, 1}, {256, 1}, {256, 2}, {256, 4}};

template <typename Cfg>
struct TileTag {
  using type = Cfg;
};

template <typename Fn>
auto with_tile(TileChoice c, Fn&& fn) {
  if (c.tokens == 64) {
    if (c.cluster == 1) return fn(TileTag<TileT64<1>>{});
    return c.cluster == 2 ? fn(TileTag<TileT64<2>>{}) : fn(TileTag<TileT64<4>>{});
  }
  if (c.tokens == 128) return fn(TileTag<TileT128<1>>{});
  if (c.cluster == 1) return fn(TileTag<TileT256<1>>{});
  return c.cluster == 2 ? fn(TileTag<TileT256<2>>{}) : fn(TileTag<TileT256<4>>{});
}

// The tile for M and N, measured on H100 (bench/results/s24_wgmma_sweep_h100_run{3,4}.md,
// bench/results/sparse24_tile_choice_h100.md). Which one wins at a shape is
// mostly how full the rounds of resident blocks are, and 4-block clusters
// are fewer (~30 resident): they win where the grid fills its rounds and
// lose by up to 2x where it does not. From M = 129: 128-token single blocks
// while their tiles fit one round (one block an SM): 1.31-1.49x against
// the 256-token clusters at M = 256 on 4096^2 and 8192^2, for either value
// type. Past one round, 256-token clusters of 4 up to M = 384; from M = 385
// int4 takes 256-token single blocks (each W tile is dequantised once per
// token tile, so fewer, larger token tiles): 1.08-1.38x against 128-token
// ones at M = 512-1024 and 1.00-1.03x against clusters of 2 at M = 2048;
// 16-bit values take clusters of 2 from M = 769 (1.06-1.17x at M = 1024 on
// 4096^2, 8192^2 and 8192x28672, 0.98x on 4096x14336). M = 512
// for 16-bit values keeps 128-token blocks (256-token ones win on two shapes
// and lose 0.89x on 8192x28672). SLIMOPS_S24_WGMMA_BT (64, 128 or 256) and
// SLIMOPS_S24_WGMMA_CLUSTER (1, 2 or 4; 64 or 256 tokens) force a tile, for
// sweeps (read per call). 64-token clusters: at M <= 64 x is most of a
// block's bytes (int4: 8 KiB of x per 3 KiB of W a stage), read from L2 by
// every W tile; multicast cuts those reads by the cluster size.
inline TileChoice choose_tile(const Sparse24Params& p) {
  const int64_t m = p.m;
  const char* bt = std::getenv("SLIMOPS_S24_WGMMA_BT");
  if (bt != nullptr && *bt != 0) {
    const char* cl = std::getenv("SLIMOPS_S24_WGMMA_CLUSTER");
    const int tokens = std::atoi(bt), cluster = cl ? std::atoi(cl) : 1;
    for (const TileChoice c : kTiles)
      if (c.tokens == tokens && c.cluster == cluster) return c;
  }
  // M <= 64: 4-block clusters (x read from L2 once per 4 W tiles) for
  // 16-bit values, 0.99-1.19x against single blocks at M = 32 and 64 on the
  // four shapes. int4: single blocks; clusters of 4 won on 8192x28672
  // (1.04-1.11x) only while the split model split its 224 tiles 4 ways:
  // unsplit, single blocks run 1.06-1.07x faster there than clusters
  // (bench/results/sparse24_block_cost_h100.md), and clusters lose up to
  // 0.58x on the smaller shapes (fewer resident clusters).
  if (m <= 64) return p.bits == 16 ? TileChoice{64, 4} : TileChoice{64, 1};
  if (m <= 128) return {128, 1};
  if (m > 3072) return {256, 4};
  const int64_t tiles_128 = s24::ceil_div(p.n, kBW) * s24::ceil_div(m, 128);
  if (tiles_128 <= current_device_sms()) return {128, 1};
  if (m <= 384) return {256, 4};
  if (p.bits == 4) return {256, 1};
  if (m <= 768) return {128, 1};
  return {256, 2};
}

// One format (element type x bits x zero points), the tile for M: reports
// the workspace size (ws_bytes != nullptr; kUnsupported where the kernel
// does not apply) or launches.
template <typename T, int kBits, bool kZeros>
Status wgmma_format(const Sparse24Params& p, void* workspace, cudaStream_t stream, size_t* ws_bytes) {
  return with_tile(choose_tile(p), [&](auto tile) {
    using K = WgmmaKernel<T, kBits, kZeros, typename decltype(tile)::type>;
    if (!K::applies(p)) return Status::kUnsupported;
    if (ws_bytes != nullptr) {
      *ws_bytes = K::plan(p).workspace_bytes;
      return Status::kOk;
    }
    return K::launch(p, workspace, stream);
  });
}

// Defined (explicitly instantiated) in sparse24_wgmma.cu and sparse24_wgmma_int4.cu.
extern template Status wgmma_format<__half, 16, false>(const Sparse24Params&, void*, cudaStream_t, size_t*);
extern template Status wgmma_format<__nv_bfloat16, 16, false>(const Sparse24Params&, void*, cudaStream_t, size_t*);
extern template Status wgmma_format<__half, 4, false>(const Sparse24Params&, void*, cudaStream_t, size_t*);
extern template Status wgmma_format<__nv_bfloat16, 4, false>(const Sparse24Params&, void*, cudaStream_t, size_t*);
extern template Status wgmma_format<__half, 4, true>(const Sparse24Params&, void*, cudaStream_t, size_t*);
extern template Status wgmma_format<__nv_bfloat16, 4, true>(const Sparse24Params&, void*, cudaStream_t, size_t*);
}  // namespace slimops::cuda::s24_wgmma
