// The 2:4 sparse GEMM kernel (sparse24_gemm.cu launches it): y = x W^T (+ b)
// on sparse tensor cores.
//
// Orientation: mma.sp needs the sparse matrix as its A operand, so the
// kernel computes y^T = W x^T: 16 rows of W are the mma's M, 32 dense k its
// K, 8 tokens of x its N. M = 1 thus wastes 7/8 of the mma's N, which costs
// nothing at small M (memory-bound) and no padding of W. x rows past the
// last token are not loaded (their mma columns are dropped); skipping the
// mma of an 8-token tile with no token behind a branch cost M = 16 up to
// 25% (it keeps the two tiles' ldmatrix and mma from interleaving), so the
// M <= 8 tiles have one 8-token tile instead.
//
// CUDA layout (python/slimops/formats/sparse24_cuda.py documents it to the
// bit): W is cut into tiles of 16 rows by 64 dense k, stored tile after tile
// (k fastest), each tile laid out as the registers of the lanes that use it:
// per lane and k32 step one 16-byte word of four A registers (bits = 16) or
// per lane one 8-byte pair of int4 words (bits = 4), and per lane one 32-bit
// metadata word serving both k32 steps (sparsity selectors 0 and 1). A stage
// is therefore a handful of contiguous byte ranges, copied with 16-byte
// cp.async, and read back with one conflict-free ld.shared per register set.
//
// x goes through shared memory as [tokens][stage k] with the 16-byte chunks
// of row r XOR-swizzled by r % 8, so each ldmatrix (8 rows, one chunk each)
// hits 8 distinct bank groups; ldmatrix.x4 yields a whole k32 B fragment.
//
// Split-K: `splits` blocks share an output tile over disjoint k ranges. Each
// writes f32 partials to the workspace and counts itself in; the last to
// arrive sums all partials in split order (deterministic), adds the bias and
// writes the output. Nothing spins. The arrival counters need no memset
// (tagged per launch, common/split_k_counter.cuh).
//
// W is read exactly once, so its values and metadata are loaded with an L2
// evict-first policy (l2_evict_first_policy); its scales and zero points go
// without one (why: the comment of cp_async_16_stream).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "../../common/sparse24_params.h"
#include "../common/split_k_counter.cuh"
#include "sparse24_primitives.cuh"
#include "sparse24_stage_loader.cuh"

namespace slimops::cuda::s24 {

// Dense k of one layout tile; the unit of K the kernel accepts.
constexpr int kTileK = 64;
constexpr int kTileRows = 16;

// kWarpsW x kWarpsT warps; each owns kMT 16-row tiles of W and kNT 8-token
// tiles of x. kStageK dense k per pipeline stage (a multiple of kTileK).
// kPostScale (int4 values without zero points): the mma multiplies the
// exact integers q - 8 and the row scales are applied to fp32 partial sums
// once per layout tile, instead of to every weight before the mma.
template <int kWarpsW_, int kWarpsT_, int kMT_, int kNT_, int kStageK_, int kStages_, int kMinBlocks_,
          bool kPostScale_ = false>
struct Tile {
  static constexpr bool kPostScale = kPostScale_;
  static constexpr int kWarpsW = kWarpsW_;
  static constexpr int kWarpsT = kWarpsT_;
  static constexpr int kMT = kMT_;
  static constexpr int kNT = kNT_;
  static constexpr int kStageK = kStageK_;
  static constexpr int kStages = kStages_;
  static constexpr int kMinBlocks = kMinBlocks_;
  static constexpr int kBW = kTileRows * kMT * kWarpsW;  // W rows (output columns) per block
  static constexpr int kBT = 8 * kNT * kWarpsT;          // tokens per block
  static constexpr int kThreads = 32 * kWarpsW * kWarpsT;
  static constexpr int kKT = kStageK / kTileK;           // layout tiles along k per stage
  static constexpr int kAccVecs = kMT * kNT;             // float4 accumulators per thread
  static_assert(kStageK % kTileK == 0 && kStageK >= 64, "x swizzle needs 8 chunks a row");
};

// Bytes of one 16 x 64 layout tile.
template <int kBits>
struct Fmt {
  static constexpr int kValBytes = kBits == 16 ? 1024 : 256;
  static constexpr int kMetaBytes = 128;
};

// Shared memory of one stage: [values | meta | x | scales | zeros].
template <typename Cfg, int kBits, bool kZeros>
struct Smem {
  static constexpr int kTilesW = Cfg::kBW / kTileRows;
  static constexpr int kVal = 0;
  static constexpr int kValBytes = kTilesW * Cfg::kKT * Fmt<kBits>::kValBytes;
  static constexpr int kMeta = kVal + kValBytes;
  static constexpr int kMetaBytes = kTilesW * Cfg::kKT * Fmt<kBits>::kMetaBytes;
  static constexpr int kX = kMeta + kMetaBytes;
  static constexpr int kXBytes = Cfg::kBT * Cfg::kStageK * 2;
  static constexpr int kS = kX + kXBytes;
  // bits 4: one float per W row and layout tile (its group's scale).
  static constexpr int kSBytes = kBits == 4 ? Cfg::kBW * Cfg::kKT * 4 : 0;
  static constexpr int kZ = kS + kSBytes;
  static constexpr int kZBytes = kZeros ? kSBytes : 0;
  static constexpr int kStageBytes = (kZ + kZBytes + 127) / 128 * 128;
  // + the "last split" flag of the epilogue.
  static constexpr int kBytes = Cfg::kStages * kStageBytes + 16;
};

struct SplitK {
  int iters;            // stages of k in the whole K (the last may be partial)
  int iters_per_split;  // every split gets at least one
  int splits;
  uint64_t* counters;   // [tiles], any contents on entry (see tag)
  float4* partials;     // [tiles][splits][kAccVecs][kThreads]
  uint64_t tag;         // this launch's tag, low 8 bits 0
};

template <typename T, int kBits, typename Cfg, bool kZeros>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks)
    sparse24_kernel(const Sparse24Params p, const SplitK sk) {
  using S = Smem<Cfg, kBits, kZeros>;
  using F = Fmt<kBits>;
  using O = Ops<T>;
  extern __shared__ __align__(128) uint8_t smem[];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int warp_w = warp % Cfg::kWarpsW, warp_t = warp / Cfg::kWarpsW;
  const int64_t w0 = int64_t(blockIdx.x) * Cfg::kBW;  // first W row of the block
  const int64_t m0 = int64_t(blockIdx.y) * Cfg::kBT;  // first token
  const int split = blockIdx.z;
  const int it0 = split * sk.iters_per_split;
  const int n_iters = min(sk.iters_per_split, sk.iters - it0);
  const int64_t ktiles = p.k / kTileK;                // layout tiles along k
  const uint32_t smem_base = smem_u32(smem);

  // ---- Producer: one stage = kKT layout tiles of each of the block's W
  // tile rows (contiguous in global memory), their metadata, x and scales.
  // The post-scaled int4 tiles copy with StageLoader (chunk addresses worked
  // out once); the others keep the loop below, which recomputes them per
  // stage: with StageLoader, ptxas 13.0 compiled the 16-bit tiles into
  // copies whose descriptor was an undefined uniform register (an illegal
  // instruction on H100; bench/NOTES.md, session 12).
  StageLoader<T, kBits, Cfg, kZeros, S, F> loader(p, tid, w0, m0, it0);
  const int tokens = loader.tokens;  // of this block's token tile (x rows to load)
  auto load_stage = [&](int st, int it) {
    if constexpr (Cfg::kPostScale) {
      loader.load(smem_base + st * S::kStageBytes, it);
    } else {
      const uint64_t pol = l2_evict_first_policy();
      const uint32_t base = smem_base + st * S::kStageBytes;
      const int64_t kt0 = int64_t(it) * Cfg::kKT;  // first layout tile along k
      const int kt_valid = int(min(int64_t(Cfg::kKT), ktiles - kt0));
      constexpr int kValChunks = F::kValBytes / 16;    // per layout tile
      constexpr int kMetaChunks = F::kMetaBytes / 16;
      for (int c = tid; c < S::kTilesW * Cfg::kKT * kValChunks; c += Cfg::kThreads) {
        const int rt = c / (Cfg::kKT * kValChunks), rem = c % (Cfg::kKT * kValChunks);
        const int64_t wt = w0 / kTileRows + rt;
        const bool ok = wt < p.n / kTileRows && rem / kValChunks < kt_valid;
        const uint8_t* src = static_cast<const uint8_t*>(p.values) +
                             ((ok ? wt * ktiles + kt0 : 0) * F::kValBytes + (ok ? rem * 16 : 0));
        cp_async_16_stream(base + S::kVal + (rt * Cfg::kKT * kValChunks + rem) * 16, src, ok, pol);
      }
      for (int c = tid; c < S::kTilesW * Cfg::kKT * kMetaChunks; c += Cfg::kThreads) {
        const int rt = c / (Cfg::kKT * kMetaChunks), rem = c % (Cfg::kKT * kMetaChunks);
        const int64_t wt = w0 / kTileRows + rt;
        const bool ok = wt < p.n / kTileRows && rem / kMetaChunks < kt_valid;
        const uint8_t* src = p.meta + ((ok ? wt * ktiles + kt0 : 0) * F::kMetaBytes + (ok ? rem * 16 : 0));
        cp_async_16_stream(base + S::kMeta + (rt * Cfg::kKT * kMetaChunks + rem) * 16, src, ok, pol);
      }
      constexpr int kXChunks = Cfg::kStageK / 8;  // 16-byte chunks of an x row
      const int64_t k0 = kt0 * kTileK;
      // Rows past the last token are never loaded (see StageLoader).
      for (int c = tid; c < tokens * kXChunks; c += Cfg::kThreads) {
        const int r = c / kXChunks, cc = c % kXChunks;
        const bool ok = cc < kt_valid * (kTileK / 8);
        const T* src = static_cast<const T*>(p.x) + (ok ? (m0 + r) * p.x_row_stride + k0 + cc * 8 : 0);
        cp_async_16(base + S::kX + (r * kXChunks + (cc ^ (r & 7))) * 16, src, ok);
      }
      if constexpr (kBits == 4) {
        const int64_t groups = p.k / p.group_size;
        for (int c = tid; c < Cfg::kBW * Cfg::kKT; c += Cfg::kThreads) {
          const int r = c / Cfg::kKT, kt = c % Cfg::kKT;
          const bool ok = w0 + r < p.n && kt < kt_valid;
          const int64_t off = ok ? (w0 + r) * groups + (k0 + kt * kTileK) / p.group_size : 0;
          cp_async_4(base + S::kS + c * 4, p.scales + off, ok);
          if constexpr (kZeros) cp_async_4(base + S::kZ + c * 4, p.zeros + off, ok);
        }
      }
    }
  };

  float acc[Cfg::kMT][Cfg::kNT][4];
#pragma unroll
  for (int i = 0; i < Cfg::kMT; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::kNT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

  // ---- Consumer: one layout tile (64 dense k = two k32 steps). A registers
  // are built per step, which keeps only one step's worth live.
  auto compute_tile = [&](int st, int kt) {
    const uint8_t* const sb = smem + st * S::kStageBytes;
    uint32_t e[Cfg::kMT];
    [[maybe_unused]] uint2 q[Cfg::kMT];            // bits 4: both steps' int4 words
    [[maybe_unused]] RowPairScales sc[Cfg::kMT];  // bits 4: scales of rows g, g + 8
#pragma unroll
    for (int i = 0; i < Cfg::kMT; ++i) {
      const int rt = warp_w * Cfg::kMT + i;  // W tile row within the block
      const int tile = rt * Cfg::kKT + kt;
      e[i] = *reinterpret_cast<const uint32_t*>(sb + S::kMeta + tile * F::kMetaBytes + lane * 4);
      if constexpr (kBits == 4) {
        q[i] = *reinterpret_cast<const uint2*>(sb + S::kVal + tile * F::kValBytes + lane * 8);
        const int r_lo = rt * kTileRows + g, r_hi = r_lo + 8;
        const float* const sr = reinterpret_cast<const float*>(sb + S::kS);
        [[maybe_unused]] const float* const zr = reinterpret_cast<const float*>(sb + S::kZ);
        sc[i] = row_pair_scales<T, kZeros>(sr[r_lo * Cfg::kKT + kt], sr[r_hi * Cfg::kKT + kt],
                                           kZeros ? zr[r_lo * Cfg::kKT + kt] : 0.f,
                                           kZeros ? zr[r_hi * Cfg::kKT + kt] : 0.f);
      }
    }
    constexpr int kXChunks = Cfg::kStageK / 8;
    const uint32_t xs = smem_base + st * S::kStageBytes + S::kX;
    if constexpr (kBits == 4 && !kZeros && Cfg::kPostScale) {
      float part[Cfg::kMT][Cfg::kNT][4] = {};
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        uint32_t a[Cfg::kMT][4];
#pragma unroll
        for (int i = 0; i < Cfg::kMT; ++i) unscaled_int4_step<T>(s == 0 ? q[i].x : q[i].y, a[i]);
#pragma unroll
        for (int j = 0; j < Cfg::kNT; ++j) {
          const int r = (warp_t * Cfg::kNT + j) * 8 + (lane & 7);
          const int cc = (kt * kTileK + s * 32) / 8 + (lane >> 3);
          uint32_t b[4];
          ldmatrix_x4(b, xs + (r * kXChunks + (cc ^ (r & 7))) * 16);
#pragma unroll
          for (int i = 0; i < Cfg::kMT; ++i) {
            if (s == 0)
              O::template mma_sp<0>(part[i][j], a[i], b, e[i]);
            else
              O::template mma_sp<1>(part[i][j], a[i], b, e[i]);
          }
        }
      }
      // C element c of a lane is W row g + 8 (c / 2): scale s_lo or s_hi.
#pragma unroll
      for (int i = 0; i < Cfg::kMT; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::kNT; ++j)
#pragma unroll
          for (int c = 0; c < 4; ++c) acc[i][j][c] = fmaf(part[i][j][c], c < 2 ? sc[i].s_lo : sc[i].s_hi, acc[i][j][c]);
    } else {
#pragma unroll
      for (int s = 0; s < 2; ++s) {
        uint32_t a[Cfg::kMT][4];
#pragma unroll
        for (int i = 0; i < Cfg::kMT; ++i) {
          if constexpr (kBits == 16) {
            const int tile = (warp_w * Cfg::kMT + i) * Cfg::kKT + kt;
            const uint4 v = *reinterpret_cast<const uint4*>(sb + S::kVal + tile * F::kValBytes + s * 512 + lane * 16);
            a[i][0] = v.x;
            a[i][1] = v.y;
            a[i][2] = v.z;
            a[i][3] = v.w;
          } else {
            dequant_int4_step<T, kZeros>(s == 0 ? q[i].x : q[i].y, sc[i], a[i]);
          }
        }
#pragma unroll
        for (int j = 0; j < Cfg::kNT; ++j) {
          const int r = (warp_t * Cfg::kNT + j) * 8 + (lane & 7);
          const int cc = (kt * kTileK + s * 32) / 8 + (lane >> 3);
          uint32_t b[4];
          ldmatrix_x4(b, xs + (r * kXChunks + (cc ^ (r & 7))) * 16);
#pragma unroll
          for (int i = 0; i < Cfg::kMT; ++i) {
            if (s == 0)
              O::template mma_sp<0>(acc[i][j], a[i], b, e[i]);
            else
              O::template mma_sp<1>(acc[i][j], a[i], b, e[i]);
          }
        }
      }
    }
  };

  // ---- Pipeline (the classic multistage cp.async loop).
#pragma unroll
  for (int st = 0; st < Cfg::kStages - 1; ++st) {
    if (st < n_iters) load_stage(st, it0 + st);
    cp_async_commit();
  }
  for (int i = 0; i < n_iters; ++i) {
    cp_async_wait<Cfg::kStages - 2>();
    // Stage i is visible to all; every warp is done with stage i - 1, whose
    // buffer the next load overwrites.
    __syncthreads();
    const int next = i + Cfg::kStages - 1;
    if (next < n_iters) load_stage(next % Cfg::kStages, it0 + next);
    cp_async_commit();
    const int st = i % Cfg::kStages;
    // Only the last stage of K may be partial: its missing tiles have no
    // valid metadata (an all-zero field is undefined for mma.sp), so they
    // are skipped rather than multiplied by zeros.
    const int kv = min(Cfg::kKT, int(ktiles - int64_t(it0 + i) * Cfg::kKT));
    if (kv == Cfg::kKT) {
#pragma unroll
      for (int kt = 0; kt < Cfg::kKT; ++kt) compute_tile(st, kt);
    } else {
      for (int kt = 0; kt < kv; ++kt) compute_tile(st, kt);
    }
  }

  // ---- Split-K handshake.
  if (sk.splits > 1) {
    const int64_t tile = int64_t(blockIdx.y) * gridDim.x + blockIdx.x;
    float4* const tile_partials = sk.partials + tile * sk.splits * Cfg::kAccVecs * Cfg::kThreads + tid;
    float4* const mine = tile_partials + int64_t(split) * Cfg::kAccVecs * Cfg::kThreads;
#pragma unroll
    for (int i = 0; i < Cfg::kMT; ++i)
#pragma unroll
      for (int j = 0; j < Cfg::kNT; ++j)
        __stcg(mine + (i * Cfg::kNT + j) * Cfg::kThreads, make_float4(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3]));
    // The barrier orders every thread's partials before thread 0's release;
    // its acquire (if last) orders the other splits' partials before the
    // reads below, which the second barrier extends to the whole block.
    __syncthreads();
    int* const last = reinterpret_cast<int*>(smem + Cfg::kStages * S::kStageBytes);
    if (tid == 0) *last = split_k::arrive(sk.counters + tile, sk.tag, sk.splits);
    __syncthreads();
    if (!*last) return;
#pragma unroll
    for (int i = 0; i < Cfg::kMT; ++i)
#pragma unroll
      for (int j = 0; j < Cfg::kNT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
    for (int s = 0; s < sk.splits; ++s) {
      const float4* src = tile_partials + int64_t(s) * Cfg::kAccVecs * Cfg::kThreads;
#pragma unroll
      for (int i = 0; i < Cfg::kMT; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::kNT; ++j) {
          const float4 v = __ldcg(src + (i * Cfg::kNT + j) * Cfg::kThreads);
          acc[i][j][0] += v.x;
          acc[i][j][1] += v.y;
          acc[i][j][2] += v.z;
          acc[i][j][3] += v.w;
        }
    }
  }

  // ---- Epilogue. C fragment (y^T): element e of a lane is W row g + 8 (e / 2)
  // of the 16-row tile and token 2t + e % 2 of the 8-token tile.
  T* const out = static_cast<T*>(p.out);
#pragma unroll
  for (int i = 0; i < Cfg::kMT; ++i)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int64_t col = w0 + (warp_w * Cfg::kMT + i) * kTileRows + 8 * hf + g;
      if (col >= p.n) continue;
      const float bias = p.bias ? p.bias[col] : 0.f;
#pragma unroll
      for (int j = 0; j < Cfg::kNT; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int64_t row = m0 + (warp_t * Cfg::kNT + j) * 8 + 2 * t + r;
          if (row < p.m) out[row * p.out_row_stride + col] = O::from_float(acc[i][j][2 * hf + r] + bias);
        }
    }
}

}  // namespace slimops::cuda::s24
