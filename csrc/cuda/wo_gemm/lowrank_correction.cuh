// The low-rank correction inside the tensor-core weight-only GEMM
// (wo_gemm_lowrank): y = x dequant(Wq)^T + (x b^T) a^T in one kernel, so a
// quantised layer with a rank-r correction of its error costs one launch
// and little more than the int4 GEMM alone.
//
// The grid has one more z slice than the GEMM's split-K, its first:
// producer blocks, one per output tile, with the GEMM blocks' thread layout. Every tile
// needs all of t = x b^T [M, rank], so the producers first share its work
// in units of (16 rows of b, kLrUnitK of k), adding their products into t
// (float32, zeroed by the launcher) with atomics, so b is read once; they
// wait for each other; then each computes a t^T for its tile, in the GEMM's
// accumulator layout, and hands it to split-K as one more partial. The
// last block of the tile to arrive (GEMM or producer) sums the partials as
// usual. The GEMM blocks run exactly as without the correction: earlier
// versions that made them compute a share of t first, or wait for t before
// their epilogue, cost 2-5 us more of a 27 us kernel on H100 (8192^2, M 16).
// Both products run on the tensor cores (mma m16n8k16); t stays float32,
// carried into the second as two 16-bit parts.
//
// The producers' wait is a spin, so the launcher fuses only when the whole
// grid is resident at once (tiles x (splits + 1) <= SMs x occupancy): a
// waiting producer never holds the place of one that has not started.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "../../common/wo_gemm_params.h"
#include "mma_primitives.cuh"

namespace slimops::cuda::wo_mma {

struct LowRankCorrectionArgs {
  const void* a = nullptr;  // [n, rank], x's dtype
  const void* b = nullptr;  // [rank, k], x's dtype
  int rank = 0;
  float* t = nullptr;       // [m, rank], zero on entry
  int* arrived = nullptr;   // blocks done with their share of t, zero on entry
};

constexpr int kLrUnitK = 128;  // k per unit of t's work: eight mma k-steps, loads all in flight

// 32 bits at elems + i (two 16-bit values), or zero.
template <typename T>
__device__ __forceinline__ uint32_t ld_pair(const T* elems, int64_t i, bool ok) {
  return ok ? __ldg(reinterpret_cast<const unsigned int*>(elems + i)) : 0u;
}

// Producers, part 1: their units of t, then their arrival. t^T = b x^T
// runs on the tensor cores (b's rows as the A operand, 16 ranks by 16 k; x
// as the B operand, 16 k by 8 rows): x is read once per 16 ranks rather
// than once per rank, which on CUDA cores made the traffic on x's few L2
// lines grow with M (M = 16 cost 18 us on H100 that way). A producer also
// asks L2 for its tile's rows of a, which it reads after the wait.
template <typename T, typename Cfg>
__device__ __forceinline__ void lowrank_produce_t(const WoGemmParams& p, const LowRankCorrectionArgs& lr,
                                                  int64_t m0, int rows, int64_t n0) {
  using P = mma::Packed<T>;
  constexpr int kWarps = Cfg::kThreads / 32;
  constexpr int kXTiles = (Cfg::kBM + 7) / 8;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  {
    const auto* a_tile = static_cast<const uint8_t*>(lr.a) + n0 * lr.rank * int64_t(sizeof(T));
    const int64_t bytes = min(int64_t(Cfg::kBN), p.n - n0) * lr.rank * int64_t(sizeof(T));
    for (int64_t off = int64_t(tid) * 128; off < bytes; off += int64_t(Cfg::kThreads) * 128)
      mma::prefetch_l2_evict_last(a_tile + off);
  }
  const int64_t chunks = (p.k + kLrUnitK - 1) / kLrUnitK;
  const int64_t units = (lr.rank + 15) / 16 * chunks;
  const int64_t blocks = int64_t(gridDim.x) * gridDim.y;  // producers: one z slice
  const int64_t block = int64_t(blockIdx.y) * gridDim.x + blockIdx.x;
  const T* b = static_cast<const T*>(lr.b);
  const T* x = static_cast<const T*>(p.x);
  for (int64_t u = block * kWarps + warp; u < units; u += blocks * kWarps) {
    const int j0 = int(u / chunks) * 16;
    const int64_t k0 = (u % chunks) * kLrUnitK;
    const bool lo_ok = j0 + g < lr.rank, hi_ok = j0 + g + 8 < lr.rank;
    const int64_t lo = (j0 + g) * p.k, hi = lo + 8 * p.k;
    float d[kXTiles][4] = {};
#pragma unroll
    for (int ks = 0; ks < kLrUnitK / 16; ++ks) {
      const int64_t k = k0 + 16 * ks + 2 * t4;
      if (k0 + 16 * ks >= p.k) break;  // K is a multiple of 16: a step is all in or all out
      const uint32_t a[4] = {ld_pair(b, lo + k, lo_ok), ld_pair(b, hi + k, hi_ok), ld_pair(b, lo + k + 8, lo_ok),
                             ld_pair(b, hi + k + 8, hi_ok)};
#pragma unroll
      for (int xt = 0; xt < kXTiles; ++xt) {
        const int r = 8 * xt + g;
        const int64_t xi = (m0 + r) * p.x_row_stride + k;
        P::mma(d[xt], a, ld_pair(x, xi, r < rows), ld_pair(x, xi + 8, r < rows));
      }
    }
    // C fragment: rank j0 + g + 8 (e / 2), x row 8 xt + 2 t4 + e % 2.
#pragma unroll
    for (int xt = 0; xt < kXTiles; ++xt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + g + 8 * (e >> 1), r = 8 * xt + 2 * t4 + (e & 1);
        if (j < lr.rank && r < rows) atomicAdd(lr.t + (m0 + r) * lr.rank + j, d[xt][e]);
      }
  }
  // The barrier orders the block's atomics before thread 0's release.
  __syncthreads();
  if (tid == 0) mma::atomic_add_acq_rel(lr.arrived, 1);
}

// 16-rank steps whose operands are loaded together: r = 64 in one round
// trip to L2.
constexpr int kLrSteps = 4;

// Producers, part 2: acc += a t^T on the tensor cores. acc is the mma's C
// fragment (columns g and g + 8 of each 16-column tile, x rows 2t and
// 2t + 1 of each 8-row tile), so a's rows are the A operand (16 columns by
// 16 ranks) and t the B operand (16 ranks by 8 rows of x), t split into a
// high and a low part each exact in T: two mmas carry t to about 16 bits
// of mantissa, where one bf16 rounding would keep 8.
template <typename T, typename Cfg>
struct LowRankBatch {
  // Raw operands: load only issues the loads, apply waits for them.
  uint32_t a[kLrSteps][Cfg::kNTiles][4];
  float2 t[kLrSteps][Cfg::kMTiles][2];

  // Ranks j0 .. j0 + 16 kLrSteps - 1; past the rank, zeros.
  __device__ __forceinline__ void load(const WoGemmParams& p, const LowRankCorrectionArgs& lr, int j0, int64_t m0,
                                       int64_t n0, int wn0, int wm0) {
    const int lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const T* a_rows = static_cast<const T*>(lr.a);
#pragma unroll
    for (int s = 0; s < kLrSteps; ++s) {
      const int j = j0 + 16 * s + 2 * t4;
      // rank % 8 == 0: each half of a step is all in or all out.
      const bool ok0 = j < lr.rank, ok1 = j + 8 < lr.rank;
#pragma unroll
      for (int nt = 0; nt < Cfg::kNTiles; ++nt) {
        // Columns past N read row N - 1 (in bounds; never stored).
        const int64_t lo = min(n0 + wn0 + 16 * nt + g, p.n - 1) * lr.rank;
        const int64_t hi = min(n0 + wn0 + 16 * nt + g + 8, p.n - 1) * lr.rank;
        a[s][nt][0] = ld_pair(a_rows, lo + j, ok0);
        a[s][nt][1] = ld_pair(a_rows, hi + j, ok0);
        a[s][nt][2] = ld_pair(a_rows, lo + j + 8, ok1);
        a[s][nt][3] = ld_pair(a_rows, hi + j + 8, ok1);
      }
#pragma unroll
      for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
        const int64_t row = m0 + wm0 + 8 * mi + g;
#pragma unroll
        for (int h = 0; h < 2; ++h)
          t[s][mi][h] = row < p.m && (h ? ok1 : ok0)
                            ? __ldcg(reinterpret_cast<const float2*>(lr.t + row * lr.rank + j + 8 * h))
                            : make_float2(0.f, 0.f);
      }
    }
  }

  __device__ __forceinline__ void apply(float (&acc)[Cfg::kNTiles][Cfg::kMTiles][4]) const {
    using P = mma::Packed<T>;
#pragma unroll
    for (int s = 0; s < kLrSteps; ++s)
#pragma unroll
      for (int nt = 0; nt < Cfg::kNTiles; ++nt)
#pragma unroll
        for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
          uint32_t hi[2], lo[2];
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float2 v = t[s][mi][h];
            hi[h] = P::pack(v.x, v.y);
            const T* rounded = reinterpret_cast<const T*>(&hi[h]);
            lo[h] = P::pack(v.x - P::to_float(rounded[0]), v.y - P::to_float(rounded[1]));
          }
          P::mma(acc[nt][mi], a[s][nt], hi[0], hi[1]);
          P::mma(acc[nt][mi], a[s][nt], lo[0], lo[1]);
        }
  }
};

// A producer block: its share of t, the wait for all of t, then its tile's
// correction in acc (zero on entry), which the caller hands to split-K.
template <typename T, typename Cfg>
__device__ __forceinline__ void lowrank_produce(const WoGemmParams& p, const LowRankCorrectionArgs& lr,
                                                int64_t m0, int rows, int64_t n0, int wn0, int wm0,
                                                float (&acc)[Cfg::kNTiles][Cfg::kMTiles][4]) {
  lowrank_produce_t<T, Cfg>(p, lr, m0, rows, n0);
  if (threadIdx.x == 0) {
    const int producers = int(gridDim.x * gridDim.y);
    while (mma::load_acquire(lr.arrived) < producers) __nanosleep(32);
  }
  // Extends thread 0's acquire to the block.
  __syncthreads();
  LowRankBatch<T, Cfg> batch;
  for (int j0 = 0; j0 < lr.rank; j0 += 16 * kLrSteps) {
    batch.load(p, lr, j0, m0, n0, wn0, wm0);
    batch.apply(acc);
  }
}

}  // namespace slimops::cuda::wo_mma
