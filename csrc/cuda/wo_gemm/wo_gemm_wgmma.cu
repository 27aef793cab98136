// Launcher of the Hopper weight-only GEMM (kernel and design in
// wo_gemm_wgmma_kernel.cuh): which tile serves which M, split-K, and the
// entry points of wo_gemm_launcher.h.
//
// Constraints (wo_gemm_wgmma_applies; outside them the caller falls back):
//   - a compute capability 9.x device (the code is sm_90a);
//   - bits 4 or 8, x fp16 or bf16, K % 64 == 0, K % group_size == 0;
//   - per-channel scales, or group_size % 32 == 0 with the number of groups
//     a multiple of 4 and scales (zero points) 16-byte aligned (the copy
//     engine reads scale rows in 16-byte steps);
//   - x and qweight 16-byte aligned, x_row_stride a multiple of 8 elements;
//   - any M >= 1 and N >= 1 (tails are masked), K < 2^30, M < 2^31.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdlib>

#include "../common/device_sms.h"
#include "../common/tensor_map.h"
#include "split_k_plan.h"
#include "weight_type_switch.h"
#include "wo_gemm_launcher.h"
#include "wo_gemm_wgmma_kernel.cuh"

namespace slimops::cuda {
namespace {

using split_k_plan::Capacity;
using split_k_plan::ceil_div;
using split_k_plan::Plan;
using wo_wgmma::SplitK;
using wo_wgmma::TensorMaps;
using wo_wgmma::Tile;
using wo_wgmma::wo_gemm_wgmma_kernel;

// BM rows of x per tile, k per stage, stages: as many as fit in shared
// memory (227 KiB a block) with int8's larger weight rows; the 256-row tile
// takes 64 k per stage so that four fit.
using TileW64 = Tile<64, 128, 5>;
using TileW128 = Tile<128, 128, 4>;
using TileW256 = Tile<256, 64, 4>;
constexpr int64_t kTileN = wo_wgmma::kBN;

CUtensorMapSwizzle swizzle_for_row(int row_bytes) {
  return row_bytes == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                         : row_bytes == 64 ? CU_TENSOR_MAP_SWIZZLE_64B : CU_TENSOR_MAP_SWIZZLE_128B;
}

// The copy engine's views of x, the weights, scales and zero points.
template <typename Cfg, int kBits>
bool make_maps(const WoGemmParams& p, TensorMaps& maps) {
  using S = wo_wgmma::Smem<Cfg, kBits>;
  namespace tm = tensor_map;
  const uint64_t row_bytes = uint64_t(p.k) * kBits / 8;
  const uint64_t groups = uint64_t(p.k / p.group_size);
  bool ok = tm::encode_2d(&maps.x, CU_TENSOR_MAP_DATA_TYPE_UINT16, p.x, uint64_t(p.k), uint64_t(p.m),
                          uint64_t(p.x_row_stride) * 2, 64, Cfg::kBM, CU_TENSOR_MAP_SWIZZLE_128B) &&
            tm::encode_2d(&maps.w, CU_TENSOR_MAP_DATA_TYPE_UINT8, p.qweight, row_bytes, uint64_t(p.n), row_bytes,
                          S::kRowBytes, wo_wgmma::kBN, swizzle_for_row(S::kRowBytes));
  if (ok && groups > 1) {
    ok = tm::encode_2d(&maps.scales, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, p.scales, groups, uint64_t(p.n), groups * 4,
                       wo_wgmma::kScaleSlots, wo_wgmma::kBN, CU_TENSOR_MAP_SWIZZLE_NONE);
    if (ok && p.zeros)
      ok = tm::encode_2d(&maps.zeros, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, p.zeros, groups, uint64_t(p.n), groups * 4,
                         wo_wgmma::kScaleSlots, wo_wgmma::kBN, CU_TENSOR_MAP_SWIZZLE_NONE);
  }
  return ok;
}

template <typename T, int kBits, typename Cfg, bool kZeros>
struct WgmmaKernel {
  static constexpr size_t kSmemBytes = wo_wgmma::Smem<Cfg, kBits>::kBytes;
  static_assert(kSmemBytes <= 232448, "an H100 block has 227 KiB of shared memory");

  static Capacity capacity() {
    return split_k_plan::kernel_capacity<WgmmaKernel>(wo_gemm_wgmma_kernel<T, kBits, Cfg, kZeros>,
                                                      wo_wgmma::kThreads, kSmemBytes, 9, true);
  }

  static Plan plan(const WoGemmParams& p) {
    const Capacity c = capacity();
    return split_k_plan::make_plan(p, 0, Cfg::kBM, wo_wgmma::kBN, Cfg::kStageK, c.sms, c.slots);
  }

  static Status launch(const WoGemmParams& p, void* workspace, cudaStream_t stream, SplitKCounters counters) {
    TensorMaps maps;
    if (!make_maps<Cfg, kBits>(p, maps)) return Status::kUnsupported;
    const Plan pl = plan(p);
    SplitK sk{pl.iters, pl.iters_per_split, pl.splits, nullptr, nullptr};
    if (pl.workspace_bytes > 0) {
      if (workspace == nullptr || (reinterpret_cast<uintptr_t>(workspace) & 15u) != 0) return Status::kInvalidArgument;
      auto* ws = static_cast<uint8_t*>(workspace);
      sk.partials = reinterpret_cast<float4*>(ws + pl.counter_bytes);
      if (counters.zeroed != nullptr && size_t(pl.tiles_m * pl.tiles_n) <= counters.count) {
        sk.counters = counters.zeroed;  // the caller's, zero and left zero: no memset
      } else {
        sk.counters = reinterpret_cast<int*>(ws);
        if (cudaMemsetAsync(workspace, 0, pl.counter_bytes, stream) != cudaSuccess) return Status::kCudaError;
      }
    }
    const dim3 grid(unsigned(pl.tiles_m), unsigned(pl.tiles_n), unsigned(pl.splits));
    wo_gemm_wgmma_kernel<T, kBits, Cfg, kZeros><<<grid, wo_wgmma::kThreads, kSmemBytes, stream>>>(p, sk, maps);
    return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
  }
};

// Rows of x per tile for M and N, measured on H100 (bf16, K x N 8192x8192,
// 8192x28672, 4096x14336; bench/results/wgmma_sweep_int{4,8}_h100_run*.md,
// bench/results/wo_gemm_tile_block_cost_h100.md): 64 rows up to M = 64;
// 128 up to M = 128; up to M = 256 128 rows while those tiles fit one round
// of blocks (one a SM; for int8 half a round), else 256. A 256-row tile
// dequantises each weight tile once, not twice: int4 1.12-1.13x at M = 256
// on 4096x14336 and 8192x28672 (224 and 448 128-row tiles), 0.68-0.89x on
// 4096^2, 8192^2 and 14336x4096 (64-128 tiles, one round). int8, 128-row
// tiles against 256-row ones at M = 160 and 256: 1.34-1.35x on 4096^2,
// 1.03-1.04x on 14336x4096 (64 tiles), 0.93-0.95x on 8192^2 (128). 256 beyond.
// SLIMOPS_WGMMA_BM (64, 128 or 256) forces one, for tile sweeps (read per
// call, like the binding's path knob).
int tile_rows(const WoGemmParams& p, int bits) {
  const char* v = std::getenv("SLIMOPS_WGMMA_BM");
  const int forced = v ? std::atoi(v) : 0;
  if (forced == 64 || forced == 128 || forced == 256) return forced;
  if (p.m <= 64) return 64;
  if (p.m <= 128) return 128;
  if (p.m <= 256) {
    const int64_t tiles_128 = ceil_div(p.n, kTileN) * ceil_div(p.m, 128);
    const int64_t sms = current_device_sms();
    if (tiles_128 <= (bits == 4 ? sms : sms / 2)) return 128;
  }
  return 256;
}

// dtype x bits x zero points x tile: 24 instances.
template <typename Fn>
auto dispatch(const WoGemmParams& p, Fn&& fn) {
  return weight_type_switch(p, [&](auto type, auto bits, auto zeros) {
    using T = typename decltype(type)::type;
    constexpr int kBits = decltype(bits)::value;
    constexpr bool kZeros = decltype(zeros)::value;
    switch (tile_rows(p, kBits)) {
      case 64: return fn(WgmmaKernel<T, kBits, TileW64, kZeros>{});
      case 128: return fn(WgmmaKernel<T, kBits, TileW128, kZeros>{});
      default: return fn(WgmmaKernel<T, kBits, TileW256, kZeros>{});
    }
  });
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

// Everything but the device's ability to run the kernel.
bool shape_applies(const WoGemmParams& p) {
  if (p.bits != 4 && p.bits != 8) return false;
  if (p.x_dtype != DType::kFloat16 && p.x_dtype != DType::kBFloat16) return false;
  if (p.m < 1 || p.n < 1 || p.k < 1 || p.group_size < 1 || p.k % p.group_size != 0) return false;
  if (p.k % 64 != 0) return false;
  const int64_t groups = p.k / p.group_size;
  // Group scales (and zero points) come by TMA: 16-byte aligned rows.
  if (groups > 1 && (p.group_size % 32 != 0 || groups % 4 != 0 || !aligned16(p.scales) ||
                     (p.zeros != nullptr && !aligned16(p.zeros))))
    return false;
  if (p.k > (int64_t(1) << 30) || p.m > 0x7fffffff || ceil_div(p.n, kTileN) > 65535) return false;
  if (p.x_row_stride < p.k || p.x_row_stride % 8 != 0 || !aligned16(p.x) || !aligned16(p.qweight)) return false;
  if (p.scales == nullptr || p.out_row_stride < p.n) return false;
  return true;
}

}  // namespace

bool wo_gemm_wgmma_applies(const WoGemmParams& p) {
  return shape_applies(p) && dispatch(p, [](auto kernel) { return decltype(kernel)::capacity().slots > 0; });
}

size_t wo_gemm_wgmma_workspace_bytes(const WoGemmParams& p) {
  if (!wo_gemm_wgmma_applies(p)) return 0;
  return dispatch(p, [&](auto kernel) { return decltype(kernel)::plan(p).workspace_bytes; });
}

Status wo_gemm_wgmma_cuda(const WoGemmParams& p, void* workspace, cudaStream_t stream, SplitKCounters counters) {
  if (!wo_gemm_wgmma_applies(p)) return Status::kUnsupported;
  if (p.out == nullptr) return Status::kInvalidArgument;
  return dispatch(p, [&](auto kernel) { return decltype(kernel)::launch(p, workspace, stream, counters); });
}

}  // namespace slimops::cuda
