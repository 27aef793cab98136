// The producer side of the mma.sp kernel (sparse24_kernel.cuh): which
// chunks of a pipeline stage each thread copies, worked out once per block.
//
// Why: ncu of the int4 kernel at M = 1 (bench/NOTES.md, session 12) counted
// ~970 instructions per warp and stage, of which 32 were mma.sp: the copy
// loops recomputed every chunk's row, column, pointer and predicate (and a
// scale's group by an integer division) in every stage, and their code
// filled the instruction cache (a quarter of the stall samples were
// "no instruction"). Here a stage's copy costs a pointer add and a
// predicate; the group of a scale is a running counter.
//
// Used by the post-scaled int4 tiles only: in the 16-bit tiles ptxas 13.0
// emitted stage copies through uniform registers nothing had written (an
// illegal instruction on H100; bench/NOTES.md, session 12).
#pragma once

#include <cstdint>

#include "../../common/sparse24_params.h"
#include "sparse24_primitives.cuh"

namespace slimops::cuda::s24 {

// Thread tid copies the chunks c = tid + j * kThreads (j = 0, 1, ...) of a
// grid of kRows x kCols chunks stored row after row. With kThreads a
// multiple of kCols a thread keeps its column and moves kThreads / kCols
// rows per j; with kCols a multiple of kThreads it keeps its row for
// kCols / kThreads consecutive j. Either way chunk j's row and column are the
// thread's own plus compile-time offsets.
template <int kRows, int kCols, int kThreads>
struct ChunkGrid {
  static_assert(kThreads % kCols == 0 || kCols % kThreads == 0, "a thread's chunks must tile the grid");
  static constexpr bool kWholeRows = kThreads % kCols == 0;
  static constexpr int kPerThread = (kRows * kCols + kThreads - 1) / kThreads;
  // Every thread has kPerThread chunks (no bounds test in the copy loop).
  static constexpr bool kExact = kRows * kCols % kThreads == 0;
  __device__ static bool has(int tid, int j) { return kExact || tid + j * kThreads < kRows * kCols; }
  __device__ static int row0(int tid) { return kWholeRows ? tid / kCols : 0; }
  __device__ static int col0(int tid) { return kWholeRows ? tid % kCols : tid; }
  __host__ __device__ static constexpr int row_of(int j) {
    return kWholeRows ? j * (kThreads / kCols) : j / (kCols / kThreads);
  }
  __host__ __device__ static constexpr int col_of(int j) {
    return kWholeRows ? 0 : (j % (kCols / kThreads)) * kThreads;
  }
};

// One thread's share of every stage: W values and metadata (16-byte chunks
// of the block's tile rows, kKT layout tiles each), x (16-byte chunks of the
// block's tokens, swizzled as the consumers' ldmatrix expects) and, for int4
// values, one float scale (and zero point) per W row and layout tile.
// load() must be called for consecutive stages it0, it0 + 1, ... (the scale
// group is a running counter), as the kernel's pipeline does.
template <typename T, int kBits, typename Cfg, bool kZeros, typename S, typename F>
struct StageLoader {
  static constexpr int kValChunks = F::kValBytes / 16;  // per layout tile
  static constexpr int kMetaChunks = F::kMetaBytes / 16;
  static constexpr int kXChunks = Cfg::kStageK / 8;  // per x row
  using ValGrid = ChunkGrid<S::kTilesW, Cfg::kKT * kValChunks, Cfg::kThreads>;
  using MetaGrid = ChunkGrid<S::kTilesW, Cfg::kKT * kMetaChunks, Cfg::kThreads>;
  using XGrid = ChunkGrid<Cfg::kBT, kXChunks, Cfg::kThreads>;
  using ScaleGrid = ChunkGrid<Cfg::kBW, Cfg::kKT, Cfg::kThreads>;
  static_assert(ValGrid::kPerThread <= 32 && MetaGrid::kPerThread <= 32 && ScaleGrid::kPerThread <= 32, "row masks");

  const Sparse24Params& p;
  int tid;
  int64_t ktiles;
  int tokens;
  // Values and metadata: the thread's first chunk at stage 0, the distance
  // between its chunks' tile rows, and which of its chunks hold real rows.
  const uint8_t* val_src;
  const uint8_t* meta_src;
  int64_t tile_row_val_bytes, tile_row_meta_bytes;
  uint32_t val_rows_ok = 0, meta_rows_ok = 0;
  // x: the thread's first chunk at k = 0.
  const T* x_src;
  int x_row, x_col;
  // Scales: the thread's layout tile within a stage (its column), its
  // first row's scales, and the group of its tile at the next stage.
  const float* scale_src = nullptr;
  const float* zero_src = nullptr;
  uint32_t scale_rows_ok = 0;
  int scale_kt = 0, tiles_per_group = 1, group = 0, group_tile = 0;
  int stage_groups = 0, stage_tiles = 0;  // a stage's kKT tiles in whole groups + tiles

  __device__ StageLoader(const Sparse24Params& p_, int tid_, int64_t w0, int64_t m0, int it0)
      : p(p_), tid(tid_), ktiles(p_.k / 64), tokens(int(min(int64_t(Cfg::kBT), p_.m - m0))) {
    const int64_t wt0 = w0 / 16, wtiles = p.n / 16;
    tile_row_val_bytes = ktiles * F::kValBytes;
    tile_row_meta_bytes = ktiles * F::kMetaBytes;
    const int vr = ValGrid::row0(tid), mr = MetaGrid::row0(tid);
    val_src = static_cast<const uint8_t*>(p.values) + (wt0 + vr) * tile_row_val_bytes + ValGrid::col0(tid) * 16;
    meta_src = p.meta + (wt0 + mr) * tile_row_meta_bytes + MetaGrid::col0(tid) * 16;
#pragma unroll
    for (int j = 0; j < ValGrid::kPerThread; ++j) {
      const int r = vr + ValGrid::row_of(j);
      if (r < S::kTilesW && wt0 + r < wtiles) val_rows_ok |= 1u << j;
    }
#pragma unroll
    for (int j = 0; j < MetaGrid::kPerThread; ++j) {
      const int r = mr + MetaGrid::row_of(j);
      if (r < S::kTilesW && wt0 + r < wtiles) meta_rows_ok |= 1u << j;
    }
    x_row = XGrid::row0(tid);
    x_col = XGrid::col0(tid);
    x_src = static_cast<const T*>(p.x) + (m0 + x_row) * p.x_row_stride + x_col * 8;
    if constexpr (kBits == 4) {
      const int64_t groups = p.k / p.group_size;
      const int sr = ScaleGrid::row0(tid);
      scale_kt = ScaleGrid::col0(tid);
      scale_src = p.scales + (w0 + sr) * groups;
      if constexpr (kZeros) zero_src = p.zeros + (w0 + sr) * groups;
#pragma unroll
      for (int j = 0; j < ScaleGrid::kPerThread; ++j) {
        const int r = sr + ScaleGrid::row_of(j);
        if (r < Cfg::kBW && w0 + r < p.n) scale_rows_ok |= 1u << j;
      }
      // group_size is a multiple of the 64-k layout tile: one division here,
      // none per stage.
      tiles_per_group = p.group_size / 64;
      const int tile = it0 * Cfg::kKT + scale_kt;
      group = tile / tiles_per_group;
      group_tile = tile % tiles_per_group;
      stage_groups = Cfg::kKT / tiles_per_group;
      stage_tiles = Cfg::kKT % tiles_per_group;
    }
  }

  // Issues stage it's copies into ring slot `base` (a shared address).
  __device__ void load(uint32_t base, int it) {
    const int64_t kt0 = int64_t(it) * Cfg::kKT;  // first layout tile along k
    const int kt_valid = int(min(int64_t(Cfg::kKT), ktiles - kt0));
    const bool full = kt_valid == Cfg::kKT;  // only the last stage of K is partial
    const uint64_t pol = l2_evict_first_policy();
    const uint8_t* const vs = val_src + kt0 * F::kValBytes;
#pragma unroll
    for (int j = 0; j < ValGrid::kPerThread; ++j) {
      const int col = ValGrid::col0(tid) + ValGrid::col_of(j);
      const bool ok = ((val_rows_ok >> j) & 1u) && (full || col / kValChunks < kt_valid);
      const uint8_t* src = vs + ValGrid::row_of(j) * tile_row_val_bytes + ValGrid::col_of(j) * 16;
      if (ValGrid::has(tid, j))
        cp_async_16_stream(base + S::kVal + (tid + j * Cfg::kThreads) * 16, ok ? src : p.values, ok, pol);
    }
    const uint8_t* const ms = meta_src + kt0 * F::kMetaBytes;
#pragma unroll
    for (int j = 0; j < MetaGrid::kPerThread; ++j) {
      const int col = MetaGrid::col0(tid) + MetaGrid::col_of(j);
      const bool ok = ((meta_rows_ok >> j) & 1u) && (full || col / kMetaChunks < kt_valid);
      const uint8_t* src = ms + MetaGrid::row_of(j) * tile_row_meta_bytes + MetaGrid::col_of(j) * 16;
      if (MetaGrid::has(tid, j))
        cp_async_16_stream(base + S::kMeta + (tid + j * Cfg::kThreads) * 16, ok ? src : p.meta, ok, pol);
    }
    // Rows past the last token are never loaded: whatever their shared
    // memory holds only reaches the mma columns of tokens that do not
    // exist, which the epilogue drops (at M = 1, 15/16 of TileS4's x).
    const T* const xs = x_src + kt0 * 64;
#pragma unroll
    for (int j = 0; j < XGrid::kPerThread; ++j) {
      const int r = x_row + XGrid::row_of(j), cc = x_col + XGrid::col_of(j);
      if (r < tokens) {
        const bool ok = full || cc < kt_valid * 8;
        const T* src = xs + XGrid::row_of(j) * p.x_row_stride + XGrid::col_of(j) * 8;
        cp_async_16(base + S::kX + (r * kXChunks + (cc ^ (r & 7))) * 16, ok ? src : p.x, ok);
      }
    }
    if constexpr (kBits == 4) {
      const int64_t groups = p.k / p.group_size;
      const bool kt_ok = full || scale_kt < kt_valid;
#pragma unroll
      for (int j = 0; j < ScaleGrid::kPerThread; ++j) {
        const bool ok = ((scale_rows_ok >> j) & 1u) && kt_ok;
        const int64_t off = ScaleGrid::row_of(j) * groups + group;
        const uint32_t dst = (tid + j * Cfg::kThreads) * 4;
        if (ScaleGrid::has(tid, j)) {
          cp_async_4(base + S::kS + dst, ok ? scale_src + off : p.scales, ok);
          if constexpr (kZeros) cp_async_4(base + S::kZ + dst, ok ? zero_src + off : p.zeros, ok);
        }
      }
      // The thread's tile moves kKT tiles along k for the next stage.
      group += stage_groups;
      group_tile += stage_tiles;
      if (group_tile >= tiles_per_group) {
        group_tile -= tiles_per_group;
        ++group;
      }
    }
  }
};

}  // namespace slimops::cuda::s24
