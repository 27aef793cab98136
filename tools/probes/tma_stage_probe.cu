// What bounds a stage of the Hopper 2:4 kernel (sparse24_wgmma_kernel.cuh)
// at M = 64? It runs ~900-1000 cycles per 64-k stage whether W is int4 or
// bf16 (bench/NOTES.md, session 13), and neither deeper pipelines nor fewer
// scale requests moved it. This probe replays the kernel's producer exactly
// (the same tensor maps, boxes and 12-stage ring, one producer thread, two
// consumer warpgroups, the same grid and split-K shape) with consumers that
// do less than the real ones:
//   mode 0: wait for the stage, release it (the copies' floor);
//   mode 1: + load the fragment words and issue the stage's two wgmma.sp
//           (raw words as A, no dequantisation; the tensor cores' share);
//   mode 2: int4: + the kernel's dequantisation (the scale slot from a
//           division by the group size, the scales' loads, dequant_int4_step).
// With no copies (mask 0) the stages complete at once: the consumers' own rate.
// Last, the library's kernel itself (WgmmaKernel, 64-token single blocks) on
// the same buffers, so the gap between the probe and the kernel is measured
// under one harness. Buffers hold random bits (valid metadata), as the
// bench's weights do: constant data draws less power.
// and lets any of the copies be left out (mask: 1 x, 2 values, 4 metadata,
// 8 scales). Timing as the bench runner's: 256 MiB write flush, a GPU-side
// sleep, events around one launch, median.
//
//   nvcc -std=c++17 -O3 -Icsrc -gencode arch=compute_90a,code=sm_90a --expt-relaxed-constexpr \
//     tools/probes/tma_stage_probe.cu -o /tmp/tma_stage_probe && /tmp/tma_stage_probe [reps] [all]
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../csrc/cuda/common/tensor_map.h"
#include "../../csrc/cuda/common/tma.cuh"
#include "../../csrc/cuda/common/wgmma.cuh"
#include "../../csrc/cuda/common/wgmma_sp_ops.cuh"
#include "../../csrc/cuda/sparse24/sparse24_primitives.cuh"
#include "../../csrc/cuda/sparse24/sparse24_wgmma_launch.cuh"
#include "probe_common.cuh"

namespace tma = slimops::cuda::tma;
namespace wg = slimops::cuda::wgmma;
namespace ptx = slimops::cuda::ptx;

constexpr int kBT = 64, kBW = 128, kTilesW = 8, kStages = 12, kThreads = 384, kGroupSize = 128;

struct Maps {
  CUtensorMap x, values, meta, scales;
};

struct Layout {
  int val_tile;  // bytes of a 16 x 64 tile's kept values
  int x, val, meta, s, stage;
  __host__ __device__ explicit Layout(int bits) {
    val_tile = bits == 16 ? 1024 : 256;
    x = 0;
    val = kBT * 128;
    meta = val + kTilesW * val_tile;
    s = meta + kTilesW * 128;
    stage = ((s + (bits == 4 ? kBW * 16 : 0)) + 1023) / 1024 * 1024;
  }
};

template <int bits, int mode, int kPending>
__global__ void __launch_bounds__(kThreads, 1)
    stage_probe(const __grid_constant__ Maps maps, int mask, int iters_per_split, int group_size, float* sink) {
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* const smem = smem_raw + ((1024u - (ptx::smem_u32(smem_raw) & 1023u)) & 1023u);
  const Layout L(bits);
  uint64_t* const full = reinterpret_cast<uint64_t*>(smem + kStages * L.stage);
  uint64_t* const empty = full + kStages;
  const int tid = threadIdx.x;
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      tma::barrier_init(&full[s], 1);
      tma::barrier_init(&empty[s], 8);
    }
    tma::fence_barrier_init();
  }
  __syncthreads();
  const int w0 = blockIdx.x * kBW, it0 = blockIdx.y * iters_per_split, n = iters_per_split;
  if (tid < 128) {
    if (tid != 0) return;
    const unsigned bytes = ((mask & 1) ? kBT * 128 : 0) + ((mask & 2) ? kTilesW * L.val_tile : 0) +
                           ((mask & 4) ? kTilesW * 128 : 0) + ((mask & 8) && bits == 4 ? kBW * 16 : 0);
    for (int i = 0; i < n; ++i) {
      const int st = i % kStages;
      if (i >= kStages) tma::wait(&empty[st], ((i / kStages) + 1) & 1);
      uint8_t* const stage = smem + st * L.stage;
      const int kt = it0 + i;
      tma::arrive_expect_tx(&full[st], bytes);
      if (mask & 1) tma::load_2d(stage + L.x, &maps.x, kt * 64, 0, &full[st]);
      if (mask & 2) tma::load_2d(stage + L.val, &maps.values, kt * (L.val_tile / 4), w0 / 16, &full[st]);
      if (mask & 4) tma::load_2d(stage + L.meta, &maps.meta, kt * 32, w0 / 16, &full[st]);
      if ((mask & 8) && bits == 4) tma::load_2d(stage + L.s, &maps.scales, (kt * 64 / kGroupSize) & ~3, w0, &full[st]);
    }
    return;
  }
  const int ctid = tid - 128, lane = tid & 31, cwarp = ctid >> 5;
  float acc[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) acc[i] = 0.f;
  // kPending wgmma groups stay in flight; each reads its own A registers,
  // so kPending + 1 register sets rotate (the loop is unrolled by that).
  constexpr int kSets = kPending + 1;
  uint32_t a[kSets][2][4] = {};
  auto step = [&](int i, uint32_t (&a0)[4], uint32_t (&a1)[4]) {
    const int st = i % kStages;
    tma::wait(&full[st], (i / kStages) & 1);
    const uint8_t* const stage = smem + st * L.stage;
    if constexpr (mode >= 1) {
      if constexpr (bits == 4 && mode == 2) {
        namespace s24 = slimops::cuda::s24;
        const uint2 q = *reinterpret_cast<const uint2*>(stage + L.val + cwarp * 256 + lane * 8);
        const int slot = ((it0 + i) * 64 / group_size) & 3;
        const int r_lo = 16 * cwarp + (lane >> 2), r_hi = r_lo + 8;
        const float* const sr = reinterpret_cast<const float*>(stage + L.s);
        const s24::RowPairScales sc =
            s24::row_pair_scales<__nv_bfloat16, false>(sr[r_lo * 4 + slot], sr[r_hi * 4 + slot], 0.f, 0.f);
        s24::dequant_int4_step<__nv_bfloat16, false>(q.x, sc, a0);
        s24::dequant_int4_step<__nv_bfloat16, false>(q.y, sc, a1);
      } else if constexpr (bits == 16) {
        const uint4 v0 = *reinterpret_cast<const uint4*>(stage + L.val + cwarp * 1024 + lane * 16);
        const uint4 v1 = *reinterpret_cast<const uint4*>(stage + L.val + cwarp * 1024 + 512 + lane * 16);
        a0[0] = v0.x & 0x3fff3fffu; a0[1] = v0.y & 0x3fff3fffu; a0[2] = v0.z & 0x3fff3fffu; a0[3] = v0.w & 0x3fff3fffu;
        a1[0] = v1.x & 0x3fff3fffu; a1[1] = v1.y & 0x3fff3fffu; a1[2] = v1.z & 0x3fff3fffu; a1[3] = v1.w & 0x3fff3fffu;
      } else {
        const uint2 q = *reinterpret_cast<const uint2*>(stage + L.val + cwarp * 256 + lane * 8);
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          a0[r] = (q.x >> r) & 0x3f003f00u;
          a1[r] = (q.y >> r) & 0x3f003f00u;
        }
      }
      wg::fence();
      const uint32_t xs = ptx::smem_u32(stage + L.x);
      wg::MmaSpRS<__nv_bfloat16, 64>::mma<0>(acc, a0, wg::desc_k_major_sw128(xs), 0x44444444u);
      wg::MmaSpRS<__nv_bfloat16, 64>::mma<1>(acc, a1, wg::desc_k_major_sw128(xs + 64), 0x44444444u);
      wg::commit_group();
      wg::wait_group<kPending>();
#pragma unroll
      for (int u = 0; u < kSets; ++u) {
        wg::fence_operands(a[u][0]);
        wg::fence_operands(a[u][1]);
      }
    }
    // Released once the wgmmas that read it retired (kPending stages late),
    // at once in mode 0.
    const int rel = mode >= 1 ? i - kPending : i;
    __syncwarp();
    if (rel >= 0 && lane == 0) tma::arrive(&empty[rel % kStages]);
  };
  for (int i = 0; i < n; i += kSets) {
#pragma unroll
    for (int u = 0; u < kSets; ++u)
      if (i + u < n) step(i + u, a[u][0], a[u][1]);
  }
  wg::wait_group<0>();
  wg::fence_operands(acc);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 32; ++i) s += acc[i];
  if (s == 1234.5f) *sink = s;
}

// Random words: (hash & and_mask) | or_mask.
__global__ void fill_random(uint32_t* p, size_t n, uint32_t and_mask, uint32_t or_mask, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 15;
    h *= 0x85EBCA77u;
    h ^= h >> 13;
    h *= 0xC2B2AE3Du;
    h ^= h >> 16;
    p[i] = (h & and_mask) | or_mask;
  }
}

// The library's wgmma kernel, 64-token single blocks, on the probe's buffers.
cudaError_t real_kernel(int bits, int k, int n, const void* x, const void* values, const void* meta,
                        const void* scales, void* out, void* workspace, size_t workspace_bytes) {
  namespace w = slimops::cuda::s24_wgmma;
  slimops::Sparse24Params p;
  p.x = x;
  p.values = values;
  p.meta = static_cast<const uint8_t*>(meta);
  p.scales = bits == 4 ? static_cast<const float*>(scales) : nullptr;
  p.out = out;
  p.m = kBT;
  p.n = n;
  p.k = k;
  p.x_row_stride = k;
  p.out_row_stride = n;
  p.bits = bits;
  p.group_size = bits == 4 ? kGroupSize : 0;
  p.dtype = slimops::DType::kBFloat16;
  p.layout = slimops::Sparse24Layout::kCuda;
  const auto launch = [&](auto kernel) {
    if (kernel.plan(p).workspace_bytes > workspace_bytes) return cudaErrorInvalidValue;
    return kernel.launch(p, workspace, nullptr) == slimops::Status::kOk ? cudaSuccess : cudaErrorLaunchFailure;
  };
  if (bits == 4) return launch(w::WgmmaKernel<__nv_bfloat16, 4, false, w::TileT64<1>>{});
  return launch(w::WgmmaKernel<__nv_bfloat16, 16, false, w::TileT64<1>>{});
}

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 30;
  namespace tm = slimops::cuda::tensor_map;
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  int clock_khz = 0;
  CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  const size_t flush_bytes = size_t(256) << 20;
  void *flush_buf, *x, *values, *meta, *scales;
  float* sink;
  const int kMaxN = 28672, kMaxK = 8192;
  CHECK(cudaMalloc(&flush_buf, flush_bytes));
  CHECK(cudaMalloc(&x, size_t(kBT) * kMaxK * 2));
  CHECK(cudaMalloc(&values, size_t(kMaxN) * kMaxK));  // bf16 kept values: N K bytes
  CHECK(cudaMalloc(&meta, size_t(kMaxN) * kMaxK / 8));
  CHECK(cudaMalloc(&scales, size_t(kMaxN) * kMaxK / kGroupSize * 4));
  CHECK(cudaMalloc(&sink, 4));
  // x and bf16 values: +-[0.5, 1) bf16 pairs; scales ~0.01-0.02 floats;
  // metadata 0x4 nibbles (positions 0 and 1: valid for any values).
  fill_random<<<1024, 256>>>(static_cast<uint32_t*>(x), size_t(kBT) * kMaxK / 2, 0x807f807fu, 0x3f003f00u, 1);
  fill_random<<<1024, 256>>>(static_cast<uint32_t*>(values), size_t(kMaxN) * kMaxK / 4, 0x807f807fu, 0x3f003f00u, 2);
  CHECK(cudaMemset(meta, 0x44, size_t(kMaxN) * kMaxK / 8));
  fill_random<<<1024, 256>>>(static_cast<uint32_t*>(scales), size_t(kMaxN) * kMaxK / kGroupSize, 0x007fffffu,
                             0x3c000000u, 3);
  void* out;
  CHECK(cudaMalloc(&out, size_t(kBT) * kMaxN * 2));
  void* workspace;
  const size_t kWorkspaceBytes = size_t(64) << 20;
  CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
  CHECK(cudaDeviceSynchronize());
  using Kernel = void (*)(Maps, int, int, int, float*);
  // [bits 4/16][mode][pending - 1]
  const Kernel kernels[2][3][3] = {
      {{stage_probe<4, 0, 1>, stage_probe<4, 0, 1>, stage_probe<4, 0, 1>},
       {stage_probe<4, 1, 1>, stage_probe<4, 1, 2>, stage_probe<4, 1, 3>},
       {stage_probe<4, 2, 1>, stage_probe<4, 2, 2>, stage_probe<4, 2, 3>}},
      {{stage_probe<16, 0, 1>, stage_probe<16, 0, 1>, stage_probe<16, 0, 1>},
       {stage_probe<16, 1, 1>, stage_probe<16, 1, 2>, stage_probe<16, 1, 3>},
       {stage_probe<16, 1, 1>, stage_probe<16, 1, 2>, stage_probe<16, 1, 3>}}};
  for (auto& b : kernels)
    for (auto& m : b)
      for (Kernel k : m) CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024));
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));

  std::printf("# %s, %d SMs, SM clock %d MHz; M = %d, 128 W rows a block, 12 stages; median of %d, us\n", prop.name, sms,
              clock_khz / 1000, kBT, reps);
  std::printf("| W | K x N | copies | consumers | wgmma groups in flight | blocks x splits | us | cycles/stage | L2->SM B/clk/SM |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  struct Shape {
    int k, n;
  };
  const Shape shapes[] = {{8192, 8192}, {4096, 14336}, {8192, 28672}};
  const char* names[] = {"none", "x", "val", "x+val", "meta", "x+meta", "val+meta", "x+val+meta", "s",
                         "x+s", "val+s", "x+val+s", "meta+s", "x+meta+s", "val+meta+s", "all"};
  for (int bits : {4, 16}) {
    const Layout L(bits);
    const size_t smem = size_t(kStages) * L.stage + 2 * kStages * 8 + 1024;
    for (const Shape sh : shapes) {
      const int ktiles = sh.k / 64, groups = sh.k / kGroupSize;
      Maps maps;
      bool ok = tm::encode_2d(&maps.x, CU_TENSOR_MAP_DATA_TYPE_UINT16, x, sh.k, kBT, uint64_t(sh.k) * 2, 64, kBT,
                              CU_TENSOR_MAP_SWIZZLE_128B) &&
                tm::encode_2d(&maps.values, CU_TENSOR_MAP_DATA_TYPE_UINT32, values, uint64_t(ktiles) * L.val_tile / 4,
                              sh.n / 16, uint64_t(ktiles) * L.val_tile, L.val_tile / 4, kTilesW,
                              CU_TENSOR_MAP_SWIZZLE_NONE) &&
                tm::encode_2d(&maps.meta, CU_TENSOR_MAP_DATA_TYPE_UINT32, meta, uint64_t(ktiles) * 32, sh.n / 16,
                              uint64_t(ktiles) * 128, 32, kTilesW, CU_TENSOR_MAP_SWIZZLE_NONE) &&
                tm::encode_2d(&maps.scales, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, scales, groups, sh.n, uint64_t(groups) * 4,
                              4, kBW, CU_TENSOR_MAP_SWIZZLE_NONE);
      if (!ok) {
        std::printf("tensor map encoding failed\n");
        return 1;
      }
      const int tiles = sh.n / kBW;
      const int splits = std::max(1, std::min(sms / tiles, 8));
      const int per_split = ktiles / splits;
      // Copy masks of mode 0 (argv[2] == "all": every combination of
      // interest), then the consumers' modes with all copies and with none.
      const bool all_masks = argc > 2;
      struct Variant {
        int mode, mask, pending;
      };
      std::vector<Variant> variants;
      for (int mask : {15, 1, 14, 7, 6, 2})
        if (all_masks || mask == 15)
          if (bits == 4 || (mask & 8) != 0 || mask == 1 || mask == 6 || mask == 2) variants.push_back({0, mask, 1});
      for (int mode : {1, 2})
        for (int pending : {1, 2, 3})
          for (int mask : {15, 0})
            if ((bits == 4 || mode == 1) && (all_masks || pending == 1)) variants.push_back({mode, mask, pending});
      // The library's kernel: its own split count, then each forced
      // (SLIMOPS_S24_SPLITS; "pending" holds it).
      for (int forced : {0, 1, 2, 3, 4}) variants.push_back({9, 15, forced});
      for (const Variant v : variants) {
        const int mode = v.mode, mask = v.mask, pending = v.pending;
        {
          std::vector<float> t;
          for (int r = 0; r < reps + 3; ++r) {
            CHECK(cudaMemsetAsync(flush_buf, 0, flush_bytes));
            spin<<<1, 1>>>(200000);
            CHECK(cudaEventRecord(start));
            if (mode == 9) {
              if (pending > 0)
                setenv("SLIMOPS_S24_SPLITS", std::to_string(pending).c_str(), 1);
              else
                unsetenv("SLIMOPS_S24_SPLITS");
              CHECK(real_kernel(bits, sh.k, sh.n, x, values, meta, scales, out, workspace, kWorkspaceBytes));
            } else {
              const Kernel kernel = kernels[bits == 4 ? 0 : 1][mode][pending - 1];
              kernel<<<dim3(tiles, splits), kThreads, smem>>>(maps, mask, per_split, kGroupSize, sink);
            }
            CHECK(cudaEventRecord(stop));
            CHECK(cudaEventSynchronize(stop));
            CHECK(cudaGetLastError());
            float ms;
            CHECK(cudaEventElapsedTime(&ms, start, stop));
            if (r >= 3) t.push_back(ms * 1e3f);
          }
          std::sort(t.begin(), t.end());
          const float us = t[t.size() / 2];
          const int m = bits == 4 ? mask : (mask & 7);
          const double bytes_stage = ((mask & 1) ? kBT * 128 : 0) + ((mask & 2) ? kTilesW * L.val_tile : 0) +
                                     ((mask & 4) ? kTilesW * 128 : 0) + ((mask & 8) && bits == 4 ? kBW * 16 : 0);
          // Blocks beyond one per SM run in later rounds (the library
          // kernel's rows: with its own or the forced split count).
          const int used_splits = mode == 9 && pending > 0 ? pending : splits;
          const int rounds = (tiles * used_splits + sms - 1) / sms;
          const double cycles = us * 1e-6 * clock_khz * 1e3 / (double(ktiles / used_splits) * rounds);
          std::printf("| %s | %dx%d | %s | %s | %d | %dx%d | %.1f | %.0f | %.1f |\n", bits == 4 ? "int4" : "bf16",
                      sh.k, sh.n, names[m], mode == 0   ? "wait+release"
                      : mode == 1 ? "+wgmma"
                      : mode == 2 ? "+dequant+wgmma"
                      : pending == 0 ? "library kernel"
                                     : "library kernel, forced splits",
                      mode == 0 || mode == 9 ? 0 : pending, tiles, used_splits, us, cycles, bytes_stage / cycles);
        }
      }
    }
  }
  return 0;
}
