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

// Tokens per tile, layout tiles (64 k) per stage, stages: as many stages as
// fit in shared memory (227 KiB a block). One layout tile per stage, so any
// K (a multiple of 64) divides into whole stages.
using TileT64 = Tile<64, 1, 12>;
using TileT128 = Tile<128, 1, 8>;
using TileT256 = Tile<256, 1, 5>;

template <typename T, typename Cfg>
struct WgmmaKernel {
  static constexpr size_t kSmemBytes = s24_wgmma::Smem<Cfg>::kBytes;
  static_assert(kSmemBytes <= 232448, "an H100 block has 227 KiB of shared memory");

  // Resident blocks on the current device (0: it cannot run the kernel).
  // Queried once per device; the launch relies on the opt-in made here.
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
    int major = 0, sms = 0, per_sm = 0;
    const auto kernel = s24_wgmma::sparse24_wgmma_kernel<T, Cfg>;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || major != 9 ||
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmemBytes)) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, s24_wgmma::kThreads, kSmemBytes) !=
            cudaSuccess) {
      cudaGetLastError();  // leave no error behind for the fallback path
      per_sm = 0;
    }
    const int64_t v = int64_t(sms) * per_sm;
    if (dev < s24::kMaxDevices) cache[dev].store(v > 0 ? v : -1, std::memory_order_relaxed);
    return v;
  }

  static s24::Plan plan(const Sparse24Params& p) {
    return s24::make_plan(p, s24_wgmma::kBW, Cfg::kBT, Cfg::kKT * s24::kTileK, std::max<int64_t>(1, slots()));
  }

  static bool applies(const Sparse24Params& p) { return slots() > 0 && p.k % (Cfg::kKT * s24::kTileK) == 0; }

  static Status launch(const Sparse24Params& p, void* workspace, cudaStream_t stream) {
    if (!applies(p)) return Status::kUnsupported;
    CUtensorMap x_map;
    if (!tensor_map::encode_2d(&x_map, CU_TENSOR_MAP_DATA_TYPE_UINT16, p.x, uint64_t(p.k), uint64_t(p.m),
                               uint64_t(p.x_row_stride) * 2, s24::kTileK, Cfg::kBT, CU_TENSOR_MAP_SWIZZLE_128B))
      return Status::kUnsupported;
    const s24::Plan pl = plan(p);
    s24::SplitK sk{pl.iters, pl.iters_per_split, pl.splits, nullptr, nullptr, 0};
    if (pl.splits > 1) {
      if (workspace == nullptr || (reinterpret_cast<uintptr_t>(workspace) & 15u) != 0) return Status::kInvalidArgument;
      sk.counters = static_cast<uint64_t*>(workspace);
      sk.partials = reinterpret_cast<float4*>(static_cast<uint8_t*>(workspace) + pl.counter_bytes);
      sk.tag = split_k::next_launch_tag();
    }
    const dim3 grid(unsigned(pl.tiles_w * pl.tiles_t), unsigned(pl.splits));
    s24_wgmma::sparse24_wgmma_kernel<T, Cfg><<<grid, s24_wgmma::kThreads, kSmemBytes, stream>>>(p, sk, x_map);
    return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
  }
};

// Tokens per tile for M. SLIMOPS_S24_WGMMA_BT (64, 128 or 256) forces one,
// for tile sweeps (read per call).
int tile_tokens(int64_t m) {
  const char* v = std::getenv("SLIMOPS_S24_WGMMA_BT");
  const int forced = v ? std::atoi(v) : 0;
  if (forced == 64 || forced == 128 || forced == 256) return forced;
  if (m <= 64) return 64;
  if (m <= 128) return 128;
  return 256;
}

template <typename Fn>
auto dispatch(const Sparse24Params& p, Fn&& fn) {
  return BOOL_SWITCH(p.dtype == DType::kBFloat16, kBf16, [&] {
    using T = std::conditional_t<kBf16, __nv_bfloat16, __half>;
    switch (tile_tokens(p.m)) {
      case 64: return fn(WgmmaKernel<T, TileT64>{});
      case 128: return fn(WgmmaKernel<T, TileT128>{});
      default: return fn(WgmmaKernel<T, TileT256>{});
    }
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
