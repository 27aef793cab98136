// The tensor-core weight-only GEMM kernel (wo_gemm_mma.cu launches it):
// tile and shared-memory layout, the cp.async pipeline, the ways of applying
// scales and zero points, and the split-K epilogue.
//
// Orientation: the mma computes out^T = W x^T, weights as the A operand (16
// output columns by 16 k), x as the B operand (16 k by 8 rows of x), so
// dequantised weight pairs land straight in A's registers, one 8-byte load
// of x is exactly B's register pair, and M <= 8 wastes no mma on padding.
//
// A block owns BM rows of x by BN = 128 output columns; each pipeline stage
// holds 64 bytes of every weight row of the tile (128 k for int4, 64 for
// int8), copied raw with cp.async, that k-range of x and one float scale (and
// zero point) per 16-byte weight chunk. ldmatrix hands each lane the weight
// words it needs; mma_dequant.cuh turns them into M + q by bit tricks.
//
// Scale and zero point (see `Mode` in the kernel): where a stage lies in one
// group per row, M + q itself goes into the mma and s (M + z) enters once
// per group in float32, with the x sums of the group from an mma against
// ones; otherwise each weight pair is scaled as (q - z_i) s, rounded once,
// and a fractional zero point's remainder enters per group in float32.
//
// Split-K as in split_k_partials.cuh (the low-rank correction's wait is the
// one place a block waits on others: lowrank_correction.cuh).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "../../common/wo_gemm_params.h"
#include "lowrank_correction.cuh"
#include "mma_dequant.cuh"
#include "mma_primitives.cuh"
#include "split_k_partials.cuh"

namespace slimops::cuda::wo_mma {

// A stage holds kRowBytes of every weight row: kChunks 16-byte chunks.
constexpr int kRowBytes = 64;
constexpr int kChunks = 4;

template <int kBits>
struct Format {
  static constexpr int kChunkK = kBits == 4 ? 32 : 16;  // weights in a 16-byte chunk of a row
  static constexpr int kStageK = kChunks * kChunkK;     // k per pipeline stage
  static constexpr int kXChunks = kStageK / 8;          // 16-byte chunks of an x row per stage
  static constexpr int kXRowBytes = kStageK * 2;
};

// The mma computes out^T = W x^T: weights are the A operand (16 output
// columns by 16 k), x the B operand (16 k by 8 rows of x). Dequantised weight
// pairs then land straight in A's registers and one 8-byte load of x is
// exactly B's register pair, with no shuffling; and M <= 8 wastes no mma on
// padding rows.
template <int kNTiles_, int kMTiles_, int kWarpsN_, int kWarpsM_, int kStages_, int kMinBlocks_, bool kFold_>
struct Tile {
  static constexpr int kNTiles = kNTiles_;  // 16-column weight tiles per warp
  static constexpr int kMTiles = kMTiles_;  // 8-row x tiles per warp
  static constexpr int kWarpsN = kWarpsN_;
  static constexpr int kWarpsM = kWarpsM_;
  static constexpr int kStages = kStages_;
  static constexpr int kMinBlocks = kMinBlocks_;
  // Scales on the accumulators where a stage shares one group (mma_dequant.cuh,
  // "raw values"): a float32 update per group and 16 x 8 tile instead of two
  // packed fmas per weight pair; pays while the weights dominate the work.
  static constexpr bool kFold = kFold_;
  static constexpr int kBM = 8 * kMTiles * kWarpsM;
  static constexpr int kBN = 16 * kNTiles * kWarpsN;
  static constexpr int kThreads = 32 * kWarpsN * kWarpsM;
  static constexpr int kAccVecs = kNTiles * kMTiles;  // float4 accumulators per thread
  static_assert(kBN * kChunks % kThreads == 0, "whole weight chunks per thread");
};

// Shared memory of one stage: [weights | x | scales | zeros].
template <typename Cfg, int kBits>
struct Smem {
  static constexpr int kWBytes = Cfg::kBN * kRowBytes;
  static constexpr int kXBytes = Cfg::kBM * Format<kBits>::kXRowBytes;
  static constexpr int kSBytes = Cfg::kBN * kChunks * 4;
  static constexpr int kW = 0;
  static constexpr int kX = kW + kWBytes;
  static constexpr int kS = kX + kXBytes;
  static constexpr int kZ = kS + kSBytes;
  static constexpr int kStageBytes = kZ + kSBytes;
  // + one int: the "last split" flag of the epilogue.
  static constexpr int kBytes = Cfg::kStages * kStageBytes + 16;
  static_assert(kStageBytes % 128 == 0, "stages keep the 128-byte swizzle phase");
};

// Chunk c (0-3) of weight row r in a stage: 128-byte lines hold two rows, and
// XOR-ing the chunk's slot with the line index puts the 8 rows that one
// ldmatrix phase reads in 8 different 16-byte bank groups.
__device__ __forceinline__ int w_offset(int r, int c) {
  const int line = r >> 1;
  return line * 128 + (((((r & 1) << 2) | c) ^ (line & 7)) << 4);
}

// Element k of x row r in a stage. Lanes of a half warp read rows g = 0..3
// at k = 4t: two 16-byte chunks per row; XOR-ing the chunk with 2 * (r % 4)
// spreads those 8 chunks over all bank groups.
template <int kXRowBytes>
__device__ __forceinline__ int x_offset(int r, int k) {
  return r * kXRowBytes + (((k >> 3) ^ ((r & 3) << 1)) << 4) + ((k & 7) << 1);
}

// B fragment: x[r][k .. k+3], the pairs (k, k+1) and (k+2, k+3) (see mma_dequant.cuh).
template <int kXRowBytes>
__device__ __forceinline__ uint2 load_b(const uint8_t* xs, int r, int k) {
  return *reinterpret_cast<const uint2*>(xs + x_offset<kXRowBytes>(r, k));
}

// kZeros: p.zeros is set (instances without it carry none of its state).
// kLowRank: add the low-rank correction lr (lowrank_correction.cuh): the first
// z slice of the grid computes it as one more split-K partial; the launcher
// guarantees one M tile and a grid resident all at once.
template <typename T, int kBits, typename Cfg, bool kZeros, bool kLowRank>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    wo_gemm_mma_kernel(const WoGemmParams p, const SplitK sk, const LowRankCorrectionArgs lr) {
  using F = Format<kBits>;
  using S = Smem<Cfg, kBits>;
  using P = mma::Packed<T>;
  extern __shared__ __align__(128) uint8_t smem[];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wn0 = (warp % Cfg::kWarpsN) * Cfg::kNTiles * 16;  // warp's first column in the tile
  const int wm0 = (warp / Cfg::kWarpsN) * Cfg::kMTiles * 8;   // warp's first x row in the tile
  const int64_t m0 = int64_t(blockIdx.x) * Cfg::kBM;
  const int64_t n0 = int64_t(blockIdx.y) * Cfg::kBN;
  // With the low-rank correction the grid's first z slice is its producers
  // (dispatched first, so they start before the GEMM blocks fill the memory
  // pipe) and they hand in the last partial.
  const int split = kLowRank ? int((blockIdx.z + gridDim.z - 1) % gridDim.z) : int(blockIdx.z);
  const int it0 = split * sk.iters_per_split;
  const int n_iters = min(sk.iters_per_split, sk.iters - it0);
  const int rows = int(min(int64_t(Cfg::kBM), p.m - m0));
  // The producers compute the correction as one more split-K partial
  // instead of a k-range (lowrank_correction.cuh).
  const bool lr_producer = kLowRank && blockIdx.z == 0;
  const int64_t row_bytes = p.k * kBits / 8;
  const int64_t groups = p.k / p.group_size;
  const int chunks_total = int(p.k / F::kChunkK);
  // Every stage lies in one group per row: one scale per row and stage.
  const bool one_group = p.group_size % F::kStageK == 0;
  const uint8_t* wq = static_cast<const uint8_t*>(p.qweight);
  const T* x = static_cast<const T*>(p.x);
  const uint32_t smem_base = mma::smem_u32(smem);

  // Rows of x beyond M stay zero in every stage (never loaded); their
  // accumulators are never stored, zero just keeps them finite.
  {
    const int per_stage = (Cfg::kBM - rows) * F::kXChunks;
    for (int i = tid; i < Cfg::kStages * per_stage; i += Cfg::kThreads) {
      const int st = i / per_stage, rem = i % per_stage;
      const int r = rows + rem / F::kXChunks, c = rem % F::kXChunks;
      *reinterpret_cast<uint4*>(smem + st * S::kStageBytes + S::kX + x_offset<F::kXRowBytes>(r, 8 * c)) =
          make_uint4(0u, 0u, 0u, 0u);
    }
  }

  // What each thread copies per stage is fixed; only the k offset moves, so
  // sources and destinations are computed once. Weight rows past N read row
  // N - 1 instead (in bounds; those columns are never stored), which leaves
  // the K tail as the only predicate.
  constexpr int kWCopies = Cfg::kBN * kChunks / Cfg::kThreads;
  constexpr int kWRowStep = Cfg::kThreads / kChunks;
  const int wc = tid % kChunks;
  const uint8_t* const wsrc = wq + 16 * wc;
  int wrow[kWCopies];  // clamped weight row of each copy
#pragma unroll
  for (int i = 0; i < kWCopies; ++i) wrow[i] = int(min(n0 + tid / kChunks + i * kWRowStep, p.n - 1));
  const int wdst = S::kW + w_offset(tid / kChunks, wc);  // + i * kWRowStep rows: whole 128-byte lines
  static_assert(kWRowStep % 2 == 0 && (kWRowStep / 2) % 8 == 0, "copies keep the weight swizzle phase");
  constexpr int kXCopies = (Cfg::kBM * F::kXChunks + Cfg::kThreads - 1) / Cfg::kThreads;
  constexpr int kXRowStep = Cfg::kThreads / F::kXChunks;
  static_assert(Cfg::kThreads % F::kXChunks == 0, "whole x rows");
  static_assert(kXRowStep % 4 == 0, "copies keep the x swizzle phase");
  const int xc = tid % F::kXChunks;
  const int xr0 = tid / F::kXChunks;
  const T* const xsrc = x + (m0 + min(xr0, rows - 1)) * p.x_row_stride + 8 * xc;
  const int64_t xstep = int64_t(kXRowStep) * p.x_row_stride;
  const int xdst = S::kX + x_offset<F::kXRowBytes>(xr0, 8 * xc);
  // Scales: with one group per stage, thread r < BN copies row r's scale;
  // otherwise each thread copies kSCopies consecutive chunks' scales of one
  // row. The group of the next unit (stage or chunk) to load is tracked
  // incrementally, which spares a division per copy.
  constexpr int kSCopies = Cfg::kBN * kChunks / Cfg::kThreads;
  const int srow = one_group ? tid : tid * kSCopies / kChunks;
  const int sc0 = one_group ? 0 : tid * kSCopies % kChunks;
  const int64_t sn = min(n0 + min(srow, Cfg::kBN - 1), p.n - 1);
  const float* const s_row = p.scales + sn * groups;
  const float* const z_row = kZeros ? p.zeros + sn * groups : nullptr;
  const int units_per_group = int(one_group ? p.group_size / F::kStageK : p.group_size / F::kChunkK);
  int s_group, s_unit;  // group of this thread's first scale in the next stage, and its unit within the group
  {
    const int unit0 = one_group ? it0 : it0 * kChunks + sc0;
    s_group = unit0 / units_per_group;
    s_unit = unit0 % units_per_group;
  }

  // Called once per stage in k order: the scale cursor advances each call.
  auto load_stage = [&](int st, int it) {
    const uint32_t base = smem_base + st * S::kStageBytes;
    const bool wok = it * kChunks + wc < chunks_total;
    const int wk = wok ? it * kRowBytes : 0;
#pragma unroll
    for (int i = 0; i < kWCopies; ++i)
      mma::cp_async_16(base + wdst + i * kWRowStep * kRowBytes, wsrc + int64_t(wrow[i]) * row_bytes + wk, wok);
    const bool xok = it * F::kStageK + 8 * xc < p.k;
    const int xk = xok ? it * F::kStageK : 0;
#pragma unroll
    for (int i = 0; i < kXCopies; ++i)
      if (xr0 + i * kXRowStep < rows)
        mma::cp_async_16(base + xdst + i * kXRowStep * F::kXRowBytes, xsrc + i * xstep + xk, xok);
    if (one_group) {
      if (srow < Cfg::kBN) {
        const uint32_t e = srow * kChunks * 4;
        mma::cp_async_4(base + S::kS + e, s_row + s_group, true);
        if (z_row) mma::cp_async_4(base + S::kZ + e, z_row + s_group, true);
      }
      if (++s_unit == units_per_group) {
        s_unit = 0;
        ++s_group;
      }
    } else {
      int gi = s_group, ui = s_unit;
#pragma unroll
      for (int e = 0; e < kSCopies; ++e) {
        // Chunks past K get scale 0, so their weights are exactly 0.
        const bool ok = it * kChunks + sc0 + e < chunks_total;
        const uint32_t off = (srow * kChunks + sc0 + e) * 4;
        mma::cp_async_4(base + S::kS + off, s_row + (ok ? gi : 0), ok);
        if (z_row) mma::cp_async_4(base + S::kZ + off, z_row + (ok ? gi : 0), ok);
        if (++ui == units_per_group) {
          ui = 0;
          ++gi;
        }
      }
      s_unit += kChunks;
      while (s_unit >= units_per_group) {
        s_unit -= units_per_group;
        ++s_group;
      }
    }
  };

  float acc[Cfg::kNTiles][Cfg::kMTiles][4];
#pragma unroll
  for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
    for (int mi = 0; mi < Cfg::kMTiles; ++mi)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][mi][e] = 0.f;
  const float zero_default = default_zero(kBits);
  // ldmatrix.x4 per 16-column tile and chunk pair: matrices (rows 0-7, chunk
  // 2cp), (rows 8-15, 2cp), (rows 0-7, 2cp+1), (rows 8-15, 2cp+1), so a lane
  // receives the words of rows g and g + 8 of both chunks.
  int w_ld[Cfg::kNTiles][2];
#pragma unroll
  for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
    for (int cp = 0; cp < 2; ++cp)
      w_ld[j][cp] = w_offset(wn0 + 16 * j + (lane & 7) + (lane & 8), 2 * cp + (lane >> 4));

  auto load_words = [&](int st, uint32_t (&bq)[Cfg::kNTiles][2][4]) {
    const uint32_t wbase = smem_base + st * S::kStageBytes + S::kW;
#pragma unroll
    for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
      for (int cp = 0; cp < 2; ++cp) mma::ldmatrix_x4(bq[j][cp], wbase + w_ld[j][cp]);
  };

  // A operand of one k step from the dequantised words of rows g (lo) and g + 8 (hi).
  auto a_frag = [](const uint32_t* lo, const uint32_t* hi, int h, uint32_t (&a)[4]) {
    a[0] = lo[2 * h];
    a[1] = hi[2 * h];
    a[2] = lo[2 * h + 1];
    a[3] = hi[2 * h + 1];
  };

  // One stage with the weights scaled as they are dequantised:
  // ((M + q) - (M + z_i)) s rounded once, z_i = z rounded to an integer (8 or
  // 0 when symmetric). kZ: xs gathers the group's x sums for the float32
  // remainder -(z - z_i) s sum x, applied by the caller (after_chunk).
  auto compute_scaled = [&](int st, auto zeros_tag, auto& xs, auto&& after_chunk) {
    constexpr bool kZ = decltype(zeros_tag)::value;
    constexpr float kM = mma::kRawOffset<T, kBits>;
    const uint8_t* base = smem + st * S::kStageBytes;
    uint32_t bq[Cfg::kNTiles][2][4];
    load_words(st, bq);
    const float* ss = reinterpret_cast<const float*>(base + S::kS);
    const float* zs = reinterpret_cast<const float*>(base + S::kZ);
    const uint32_t ones[4] = {mma::kOnes<T>, mma::kOnes<T>, mma::kOnes<T>, mma::kOnes<T>};
    uint32_t s2[Cfg::kNTiles][2] = {}, zc2[Cfg::kNTiles][2] = {};
    float zrest[Cfg::kNTiles][2] = {};  // kZ: -(z - z_i) s_T of rows g and g + 8
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      if (c == 0 || !one_group) {
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) {
            const int e = (wn0 + 16 * j + 8 * hf + g) * kChunks + (one_group ? 0 : c);
            const float z = kZ ? zs[e] : zero_default;
            s2[j][hf] = P::splat(ss[e]);
            zc2[j][hf] = P::splat(-(kM + rintf(z)));
            if constexpr (kZ) {
              // z_i and s exactly as the weights see them (rounded to T).
              const float z_used = -P::to_float(P::from_float(-(kM + rintf(z)))) - kM;
              zrest[j][hf] = -(z - z_used) * P::to_float(P::from_float(ss[e]));
            }
          }
      }
      const int cp = c >> 1, sel = (c & 1) * 2;
      if constexpr (kBits == 4) {
        uint32_t lo[Cfg::kNTiles][4], hi[Cfg::kNTiles][4];
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j) {
          mma::raw_int4<T>(bq[j][cp][sel], lo[j]);
          mma::raw_int4<T>(bq[j][cp][sel + 1], hi[j]);
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            lo[j][r] = mma::scale_raw<T>(lo[j][r], zc2[j][0], s2[j][0]);
            hi[j][r] = mma::scale_raw<T>(hi[j][r], zc2[j][1], s2[j][1]);
          }
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          uint2 b[Cfg::kMTiles];
#pragma unroll
          for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
            b[mi] = load_b<F::kXRowBytes>(base + S::kX, wm0 + 8 * mi + g, 32 * c + 16 * h + 4 * t);
            if constexpr (kZ) P::mma(xs[mi], ones, b[mi].x, b[mi].y);
          }
#pragma unroll
          for (int j = 0; j < Cfg::kNTiles; ++j) {
            uint32_t a[4];
            a_frag(lo[j], hi[j], h, a);
#pragma unroll
            for (int mi = 0; mi < Cfg::kMTiles; ++mi) P::mma(acc[j][mi], a, b[mi].x, b[mi].y);
          }
        }
      } else {
        uint32_t lo[Cfg::kNTiles][2], hi[Cfg::kNTiles][2];
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j) {
          mma::raw_int8<T>(bq[j][cp][sel], lo[j]);
          mma::raw_int8<T>(bq[j][cp][sel + 1], hi[j]);
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            lo[j][r] = mma::scale_raw<T>(lo[j][r], zc2[j][0], s2[j][0]);
            hi[j][r] = mma::scale_raw<T>(hi[j][r], zc2[j][1], s2[j][1]);
          }
        }
        uint2 b[Cfg::kMTiles];
#pragma unroll
        for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
          b[mi] = load_b<F::kXRowBytes>(base + S::kX, wm0 + 8 * mi + g, 16 * c + 4 * t);
          if constexpr (kZ) P::mma(xs[mi], ones, b[mi].x, b[mi].y);
        }
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j) {
          uint32_t a[4];
          a_frag(lo[j], hi[j], 0, a);
#pragma unroll
          for (int mi = 0; mi < Cfg::kMTiles; ++mi) P::mma(acc[j][mi], a, b[mi].x, b[mi].y);
        }
      }
      after_chunk(c, zrest);
    }
  };

  // The zero point's fractional remainder for a group: acc += zrest xs, with
  // zrest = -(z - z_i) s_T computed as the weights saw z_i and s, so no
  // rounding shared by the whole group is left over.
  auto flush_zeros = [&](const auto& xs, const auto& zrest) {
#pragma unroll
    for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
      for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
        float(&o)[4] = acc[j][mi];
        o[0] = fmaf(zrest[j][0], xs[mi][0], o[0]);
        o[1] = fmaf(zrest[j][0], xs[mi][1], o[1]);
        o[2] = fmaf(zrest[j][1], xs[mi][0], o[2]);
        o[3] = fmaf(zrest[j][1], xs[mi][1], o[3]);
      }
  };

  // One stage in the raw-value form: accg gathers sum (M + q) x of the group
  // in progress; xs the sums of x rows 2t and 2t + 1 (in c0 and c1), from an
  // mma with all-ones weights.
  auto compute_raw = [&](int st, auto& accg, auto& xs) {
    const uint8_t* base = smem + st * S::kStageBytes;
    uint32_t bq[Cfg::kNTiles][2][4];
    load_words(st, bq);
    const uint32_t ones[4] = {mma::kOnes<T>, mma::kOnes<T>, mma::kOnes<T>, mma::kOnes<T>};
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int cp = c >> 1, sel = (c & 1) * 2;
      if constexpr (kBits == 4) {
        uint32_t lo[Cfg::kNTiles][4], hi[Cfg::kNTiles][4];
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j) {
          mma::raw_int4<T>(bq[j][cp][sel], lo[j]);
          mma::raw_int4<T>(bq[j][cp][sel + 1], hi[j]);
        }
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          uint2 b[Cfg::kMTiles];
#pragma unroll
          for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
            b[mi] = load_b<F::kXRowBytes>(base + S::kX, wm0 + 8 * mi + g, 32 * c + 16 * h + 4 * t);
            P::mma(xs[mi], ones, b[mi].x, b[mi].y);
          }
#pragma unroll
          for (int j = 0; j < Cfg::kNTiles; ++j) {
            uint32_t a[4];
            a_frag(lo[j], hi[j], h, a);
#pragma unroll
            for (int mi = 0; mi < Cfg::kMTiles; ++mi) P::mma(accg[j][mi], a, b[mi].x, b[mi].y);
          }
        }
      } else {
        uint32_t lo[Cfg::kNTiles][2], hi[Cfg::kNTiles][2];
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j) {
          mma::raw_int8<T>(bq[j][cp][sel], lo[j]);
          mma::raw_int8<T>(bq[j][cp][sel + 1], hi[j]);
        }
        uint2 b[Cfg::kMTiles];
#pragma unroll
        for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
          b[mi] = load_b<F::kXRowBytes>(base + S::kX, wm0 + 8 * mi + g, 16 * c + 4 * t);
          P::mma(xs[mi], ones, b[mi].x, b[mi].y);
        }
#pragma unroll
        for (int j = 0; j < Cfg::kNTiles; ++j) {
          uint32_t a[4];
          a_frag(lo[j], hi[j], 0, a);
#pragma unroll
          for (int mi = 0; mi < Cfg::kMTiles; ++mi) P::mma(accg[j][mi], a, b[mi].x, b[mi].y);
        }
      }
    }
  };

  // End of a group (or of this split's k-range): acc += s (accg - (M + z) xs)
  // for this lane's weight rows g and g + 8, with the scales of the stage
  // just computed (one per row).
  auto flush_raw = [&](int st, const auto& accg, const auto& xs) {
    const float* ss = reinterpret_cast<const float*>(smem + st * S::kStageBytes + S::kS);
    const float* zs = reinterpret_cast<const float*>(smem + st * S::kStageBytes + S::kZ);
    constexpr float kM = mma::kRawOffset<T, kBits>;
#pragma unroll
    for (int j = 0; j < Cfg::kNTiles; ++j) {
      const int e = (wn0 + 16 * j + g) * kChunks;
      const float s_lo = ss[e], s_hi = ss[e + 8 * kChunks];
      const float c_lo = -(kM + (kZeros ? zs[e] : zero_default)) * s_lo;
      const float c_hi = -(kM + (kZeros ? zs[e + 8 * kChunks] : zero_default)) * s_hi;
#pragma unroll
      for (int mi = 0; mi < Cfg::kMTiles; ++mi) {
        float(&o)[4] = acc[j][mi];
        const float(&q)[4] = accg[j][mi];
        o[0] = fmaf(s_lo, q[0], fmaf(c_lo, xs[mi][0], o[0]));
        o[1] = fmaf(s_lo, q[1], fmaf(c_lo, xs[mi][1], o[1]));
        o[2] = fmaf(s_hi, q[2], fmaf(c_hi, xs[mi][0], o[2]));
        o[3] = fmaf(s_hi, q[3], fmaf(c_hi, xs[mi][1], o[3]));
      }
    }
  };

  // Pipeline: kStages - 1 stages in flight while one is computed. A group is
  // committed every step, empty or not, so wait_group counts stay exact.
  // How a run applies scales and zero points:
  //   kScaled: as weights are dequantised, ((M + q) - (M + z_i)) s rounded
  //            once (exact for symmetric weights); kScaledZeros adds the
  //            zero point's fractional part in float32 per group. Folding
  //            a rounded -z s into the weights instead would shift every
  //            weight of a group alike: an error that adds up over K.
  //   raw forms, scale and zero in float32 on the accumulators: once per
  //            stage (a stage is a whole group: the sums start from zero,
  //            no clearing) or per group of stages.
  enum Mode : int { kScaled, kScaledZeros, kRawStage, kRawGroups };
  auto run = [&](auto mode_tag) {
    constexpr int kMode = decltype(mode_tag)::value;
    constexpr bool kPersist = kMode == kRawGroups;
    constexpr int kGN = kPersist ? Cfg::kNTiles : 1;
    constexpr int kGM = kPersist || kMode == kScaledZeros ? Cfg::kMTiles : 1;
    float accg[kGN][kGM][4] = {};
    float xs[kGM][4] = {};
    auto clear = [&] {
#pragma unroll
      for (int j = 0; j < kGN; ++j)
#pragma unroll
        for (int mi = 0; mi < kGM; ++mi)
#pragma unroll
          for (int e = 0; e < 4; ++e) accg[j][mi][e] = 0.f;
#pragma unroll
      for (int mi = 0; mi < kGM; ++mi)
#pragma unroll
        for (int e = 0; e < 4; ++e) xs[mi][e] = 0.f;
    };
    // Place of the next stage (one group per stage) or chunk in its group.
    int group_pos = (one_group ? it0 : it0 * kChunks) % units_per_group;
#pragma unroll
    for (int st = 0; st < Cfg::kStages - 1; ++st) {
      if (st < n_iters) load_stage(st, it0 + st);
      mma::cp_async_commit();
    }
    for (int i = 0; i < n_iters; ++i) {
      mma::cp_async_wait<Cfg::kStages - 2>();
      // Stage i is visible to all; every warp is done with stage i - 1, whose
      // buffer the next load overwrites.
      __syncthreads();
      const int next = i + Cfg::kStages - 1;
      if (next < n_iters) load_stage(next % Cfg::kStages, it0 + next);
      mma::cp_async_commit();
      const int st = i % Cfg::kStages;
      const bool last_stage = i == n_iters - 1;
      if constexpr (kMode == kRawStage) {
        float accs[Cfg::kNTiles][Cfg::kMTiles][4] = {};
        float xss[Cfg::kMTiles][4] = {};
        compute_raw(st, accs, xss);
        flush_raw(st, accs, xss);
      } else if constexpr (kMode == kRawGroups) {
        compute_raw(st, accg, xs);
        if (++group_pos == units_per_group || last_stage) {
          flush_raw(st, accg, xs);
          group_pos = 0;
          clear();
        }
      } else if constexpr (kMode == kScaledZeros) {
        // A group ends with a stage or a chunk (K % group_size == 0), and the
        // split's range with chunk 3 of its last stage; chunks past K carry
        // no sums (zero x) and scale 0.
        compute_scaled(st, std::true_type{}, xs, [&](int c, const auto& zrest) {
          const bool unit_end = one_group ? c == kChunks - 1 : true;
          if (unit_end && (++group_pos == units_per_group || (last_stage && c == kChunks - 1))) {
            flush_zeros(xs, zrest);
            group_pos = 0;
            clear();
          }
        });
      } else {
        compute_scaled(st, std::false_type{}, xs, [](int, const auto&) {});
      }
    }
  };
  if constexpr (kLowRank)
    if (lr_producer) lowrank_produce<T, Cfg>(p, lr, m0, rows, n0, wn0, wm0, acc);
  if (!lr_producer) {
    bool raw = false;
    if constexpr (Cfg::kFold) {
      if (one_group) {
        if (units_per_group == 1)
          run(std::integral_constant<int, kRawStage>{});
        else
          run(std::integral_constant<int, kRawGroups>{});
        raw = true;
      }
    }
    if (!raw) run(std::integral_constant<int, kZeros ? kScaledZeros : kScaled>{});
  }

  if (sk.splits > 1) {
    int* const flag = reinterpret_cast<int*>(smem + Cfg::kStages * S::kStageBytes);
    const int64_t tile = int64_t(blockIdx.y) * gridDim.x + blockIdx.x;
    // acc as one flat array: [kNTiles][kMTiles][4] floats, contiguous.
    auto& flat = reinterpret_cast<float(&)[Cfg::kAccVecs * 4]>(acc);
    if (!reduce_split_k<Cfg::kAccVecs * 4, Cfg::kThreads>(sk, tile, split, tid, flat, flag, [] { __syncthreads(); }))
      return;
  }

  // C fragment (out^T): element e of a lane is column g + 8 (e / 2) of the
  // 16-column tile and x row 2t + e % 2 of the 8-row tile.
  T* const out = static_cast<T*>(p.out);
#pragma unroll
  for (int j = 0; j < Cfg::kNTiles; ++j)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int64_t col = n0 + wn0 + 16 * j + 8 * hf + g;
      if (col >= p.n) continue;
      const float b = p.bias ? p.bias[col] : 0.f;
#pragma unroll
      for (int mi = 0; mi < Cfg::kMTiles; ++mi)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int64_t row = m0 + wm0 + 8 * mi + 2 * t + r;
          if (row < p.m) out[row * p.out_row_stride + col] = P::from_float(acc[j][mi][2 * hf + r] + b);
        }
    }
}

}  // namespace slimops::cuda::wo_mma
