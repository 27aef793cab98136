// The low-rank correction inside the tensor-core weight-only GEMM
// (wo_gemm_lowrank): y = x dequant(Wq)^T + (x b^T) a^T in one kernel, so
// a quantised layer with a rank-r correction of its error costs one launch
// and little more than the int4 GEMM alone.
//
// Every output tile needs all of t = x b^T [M, rank]. Computing t in each
// block would read b once per block; instead its work is spread over every
// warp of the grid in units of (one row of b, kLrUnitK of k), each adding
// its dot products into t (float32, zeroed by the launcher) with atomics,
// and b is read once. A block does its units right after the pipeline's
// first weight loads are issued (their latency covers the work), then
// counts itself in. The block that writes an output tile (the only one, or
// the split that arrives last) waits until every block has counted in,
// stages its rows of a and the rows of t in shared memory kLrChunk ranks at
// a time, and adds a t to its accumulators before the store.
//
// The wait is a spin, so the launcher fuses only when the whole grid is
// resident at once (tiles x splits <= SMs x occupancy): a waiting block
// then never holds the place of one that has not started.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "../../common/wo_gemm_params.h"
#include "mma_primitives.cuh"

namespace slimops::cuda::wo_mma {

struct LowRankEpilogue {
  const void* a = nullptr;  // [n, rank], x's dtype
  const void* b = nullptr;  // [rank, k], x's dtype
  int rank = 0;
  float* t = nullptr;       // [m, rank], zero on entry
  int* arrived = nullptr;   // blocks done with their share of t, zero on entry
};

constexpr int kLrUnitK = 512;  // k per unit of t's work: 16 values a lane
constexpr int kLrChunk = 64;   // ranks staged in shared memory at a time

// Bytes of shared memory the epilogue stages: a chunk of a's rows of the
// tile and of t's rows, both [rows][kLrChunk].
template <typename T, typename Cfg>
constexpr int kLrSmemBytes = Cfg::kBN * kLrChunk * int(sizeof(T)) + Cfg::kBM * kLrChunk * 4;

// Eight packed 16-bit values as floats.
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      f[2 * i] = __uint_as_float(w[i] << 16);  // bf16 -> f32 is a shift
      f[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
    } else {
      const float2 h = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
      f[2 * i] = h.x;
      f[2 * i + 1] = h.y;
    }
  }
}

// Part 1, in every block: its units of t, then its arrival. Blocks of split
// 0 also ask L2 to hold their tile's rows of a for the epilogue.
template <typename T, typename Cfg>
__device__ __forceinline__ void lowrank_share_t(const WoGemmParams& p, const LowRankEpilogue& lr, int64_t m0,
                                                int rows, int64_t n0) {
  constexpr int kWarps = Cfg::kThreads / 32;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (blockIdx.z == 0) {
    const auto* a_tile = static_cast<const uint8_t*>(lr.a) + n0 * lr.rank * int64_t(sizeof(T));
    const int64_t bytes = min(int64_t(Cfg::kBN), p.n - n0) * lr.rank * int64_t(sizeof(T));
    for (int64_t off = int64_t(tid) * 128; off < bytes; off += int64_t(Cfg::kThreads) * 128)
      mma::prefetch_l2_evict_last(a_tile + off);
  }
  const int64_t units_per_row = (p.k + kLrUnitK - 1) / kLrUnitK;
  const int64_t units = lr.rank * units_per_row;
  const int64_t blocks = int64_t(gridDim.x) * gridDim.y * gridDim.z;
  const int64_t block = (int64_t(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const T* b = static_cast<const T*>(lr.b);
  const T* x = static_cast<const T*>(p.x);
  for (int64_t u = block * kWarps + warp; u < units; u += blocks * kWarps) {
    const int64_t j = u / units_per_row, k0 = (u % units_per_row) * kLrUnitK;
    float part[Cfg::kBM];
#pragma unroll
    for (int i = 0; i < Cfg::kBM; ++i) part[i] = 0.f;
#pragma unroll
    for (int h = 0; h < kLrUnitK / 256; ++h) {
      const int64_t k = k0 + 256 * h + 8 * lane;
      if (k < p.k) {
        float bf[8];
        unpack8<T>(__ldcs(reinterpret_cast<const uint4*>(b + j * p.k + k)), bf);  // read once: streamed
#pragma unroll
        for (int i = 0; i < Cfg::kBM; ++i)
          if (i < rows) {
            float xf[8];
            unpack8<T>(__ldg(reinterpret_cast<const uint4*>(x + (m0 + i) * p.x_row_stride + k)), xf);
#pragma unroll
            for (int e = 0; e < 8; ++e) part[i] = fmaf(bf[e], xf[e], part[i]);
          }
      }
    }
#pragma unroll
    for (int i = 0; i < Cfg::kBM; ++i)
      if (i < rows) {
        float v = part[i];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) atomicAdd(lr.t + (m0 + i) * lr.rank + j, v);
      }
  }
  // The barrier orders the block's atomics before thread 0's release.
  __syncthreads();
  if (tid == 0) mma::atomic_add_acq_rel(lr.arrived, 1);
}

// 16-byte unit u of row r of a staged [rows][units] array: XOR-ing with
// r % 8 puts the 8 rows a quarter warp reads at one unit in 8 bank groups.
__device__ __forceinline__ int lr_unit(int r, int units, int u) { return (r * units + (u ^ (r & 7))) * 16; }

// Part 2, in the block that writes the tile: wait for all of t, then
// acc += a t for this lane's accumulators (C fragment: columns g and g + 8
// of each 16-column tile, x rows 2t and 2t + 1 of each 8-row tile).
template <typename T, typename Cfg>
__device__ __forceinline__ void lowrank_add_correction(const WoGemmParams& p, const LowRankEpilogue& lr,
                                                       uint8_t* smem, int64_t m0, int64_t n0, int wn0, int wm0,
                                                       float (&acc)[Cfg::kNTiles][Cfg::kMTiles][4]) {
  constexpr int kAUnits = kLrChunk * int(sizeof(T)) / 16;
  constexpr int kTUnits = kLrChunk * 4 / 16;
  const int tid = threadIdx.x, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int blocks = int(gridDim.x * gridDim.y * gridDim.z);
  if (tid == 0)
    while (mma::load_acquire(lr.arrived) < blocks) __nanosleep(64);
  // Also: every warp is done with the pipeline's buffers reused below.
  __syncthreads();
  const uint32_t a_smem = mma::smem_u32(smem);
  const uint32_t t_smem = a_smem + Cfg::kBN * kLrChunk * int(sizeof(T));
  const uint8_t* a_stage = smem;
  const uint8_t* t_stage = smem + Cfg::kBN * kLrChunk * int(sizeof(T));
  const T* a = static_cast<const T*>(lr.a);
  for (int r0 = 0; r0 < lr.rank; r0 += kLrChunk) {
    // Ranks past the end and rows past N or M are zero-filled: they add 0.
    for (int i = tid; i < Cfg::kBN * kAUnits; i += Cfg::kThreads) {
      const int row = i / kAUnits, u = i % kAUnits, j = r0 + 8 * u;
      const bool ok = j < lr.rank && n0 + row < p.n;
      mma::cp_async_16(a_smem + lr_unit(row, kAUnits, u), ok ? a + (n0 + row) * lr.rank + j : a, ok);
    }
    for (int i = tid; i < Cfg::kBM * kTUnits; i += Cfg::kThreads) {
      const int row = i / kTUnits, u = i % kTUnits, j = r0 + 4 * u;
      const bool ok = j < lr.rank && m0 + row < p.m;
      mma::cp_async_16(t_smem + lr_unit(row, kTUnits, u), ok ? lr.t + (m0 + row) * lr.rank + j : lr.t, ok);
    }
    mma::cp_async_commit();
    mma::cp_async_wait<0>();
    __syncthreads();
#pragma unroll 2
    for (int s = 0; s < kLrChunk / 8; ++s) {
      float tv[Cfg::kMTiles][2][8];
#pragma unroll
      for (int mi = 0; mi < Cfg::kMTiles; ++mi)
#pragma unroll
        for (int rr = 0; rr < 2; ++rr) {
          const int row = wm0 + 8 * mi + 2 * t4 + rr;
          const float4 lo = *reinterpret_cast<const float4*>(t_stage + lr_unit(row, kTUnits, 2 * s));
          const float4 hi = *reinterpret_cast<const float4*>(t_stage + lr_unit(row, kTUnits, 2 * s + 1));
          const float v[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
          for (int e = 0; e < 8; ++e) tv[mi][rr][e] = v[e];
        }
#pragma unroll
      for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const int row = wn0 + 16 * j + 8 * hf + g;
          float af[8];
          unpack8<T>(*reinterpret_cast<const uint4*>(a_stage + lr_unit(row, kAUnits, s)), af);
#pragma unroll
          for (int mi = 0; mi < Cfg::kMTiles; ++mi)
#pragma unroll
            for (int rr = 0; rr < 2; ++rr) {
              float dot = 0.f;
#pragma unroll
              for (int e = 0; e < 8; ++e) dot = fmaf(af[e], tv[mi][rr][e], dot);
              acc[j][mi][2 * hf + rr] += dot;
            }
        }
    }
    __syncthreads();  // the next chunk overwrites the stage
  }
}

}  // namespace slimops::cuda::wo_mma
