// The Hopper (sm_90a) 2:4 sparse GEMM kernel for medium and large M
// (sparse24_wgmma.cu launches it): y = x W^T (+ b), kept values in x's
// 16-bit type or int4 with group scales (and zero points).
//
// Like the mma.sp kernel (sparse24_kernel.cuh) it computes y^T = W x^T with
// the sparse W as the A operand, straight from registers, and x as the B
// operand; but each consumer warpgroup issues wgmma.mma_async.sp m64nBTk32,
// one instruction for 64 W rows by all BT tokens of the tile, which the
// tensor cores read from shared memory themselves. The mma.sp kernel feeds
// 16 x 8 tiles from ldmatrix fragments and tops out near the dense rate at
// large M (bench/NOTES.md); this one aims at the sparse tensor cores' 2x.
//
// The CUDA layout (formats/sparse24_cuda.py) already stores each 16 x 64
// tile of W as the registers of the lanes of one warp: per k32 step 16 bytes
// a lane (mma.sp's A registers a0..a3, which are also what wgmma.sp's A
// fragment holds for each warp's 16 rows), and one metadata word a lane for
// both steps, lanes 4g + 2s + c serving step s (sparsity selector s). So a
// consumer lane reads one 16-byte word per step and one word per tile from
// shared memory, and nothing is repacked. int4 values: 8 bytes a lane per
// tile, one 32-bit word per step, turned into the same A registers by
// dequant_int4_step (sparse24_primitives.cuh, shared with the mma.sp kernel)
// with the scales of the lane's two rows; the copy engine brings the
// scales (and zero points) of the block's rows as a box of 4 groups around
// the stage's (groups are multiples of 64 k: one per stage).
//
// A block is one producer warpgroup and two consumer warpgroups (kBW = 128 W
// rows, 64 each, a 16-row layout tile per warp). Per pipeline stage of kKT
// layout tiles (64 k each), the producer's elected thread has the copy
// engine bring x's rows (a tensor map, 128-byte swizzle, one 64-wide box per
// tile) and the block's 8 W tile rows: the layout stores tile row R's tiles
// one after another, so W is a 2D tensor of [N / 16] rows of K / 64 tiles,
// and one box of 8 rows by one tile each brings the values (8 KiB), another
// the metadata. (Sixteen 1 KiB and 128-byte bulk copies per stage instead ran
// at ~0.6 of cuSPARSELt's rate with the same tile: bench/NOTES.md.) A "full"
// mbarrier counts the bytes in. Consumers load their fragments, issue the
// stage's wgmmas, and once the previous stage's wgmmas have retired, arrive
// on its "empty" barrier so the producer may refill it. No block-wide
// barrier in the loop.
//
// Clusters. Every block of a token tile reads the same x rows, and x is most
// of what a block reads (BT x 128 bytes per 64 k against 9 KiB of W); at
// large M that traffic is the bound (cuSPARSELt's kernel with this tile runs
// at 90% of the L2's throughput, bench/NOTES.md). So kCluster blocks with consecutive W
// tiles and the same token tile form a cluster, and each has the copy engine
// fetch 1/kCluster of the x box and multicast it into all of them: a block's
// L2 reads of x drop by kCluster. A stage may then be refilled only when the
// consumers of every block of the cluster are done with it: "empty" barriers
// count one arrival per consumer warp of the cluster (remote arrivals), and
// before exiting, a producer waits until its stages are released, so that no
// block exits while another may still arrive on its barriers.
//
// Output tiles are visited in groups of kGroupW W tiles by every token tile,
// so the blocks resident at once share W and x tiles in L2 (a row of 132 W
// tiles by one token tile would stream ~150 MB of W per wave at M = 4096).
// Split-K as in the mma.sp kernel: tagged counters, last block sums.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "../../common/sparse24_params.h"
#include "../common/split_k_counter.cuh"
#include "../common/tma.cuh"
#include "../common/wgmma.cuh"
#include "../common/wgmma_sp_ops.cuh"
#include "../wo_gemm/mma_primitives.cuh"
#include "../wo_gemm/split_k_partials.cuh"
#include "sparse24_kernel.cuh"

namespace slimops::cuda::s24_wgmma {

using s24::kTileK;
using s24::kTileRows;
using s24::SplitK;

constexpr int kConsumerGroups = 2;
constexpr int kBW = 64 * kConsumerGroups;  // W rows per block: wgmma's M per consumer group
constexpr int kTilesW = kBW / kTileRows;   // layout tile rows per block, one per consumer warp
constexpr int kThreads = 128 * (1 + kConsumerGroups);
constexpr int kConsumerThreads = 128 * kConsumerGroups;
constexpr int kConsumerWarps = kConsumerThreads / 32;
template <int kBits>
constexpr int kValTileBytes = kBits == 16 ? 1024 : 256;  // a 16 x 64 tile's kept values
constexpr int kMetaTileBytes = 128;
// Groups per row and stage in shared memory (int4): a box of scales must
// start 16 bytes into a row, so it starts at the stage's group rounded down
// to a multiple of 4.
constexpr int kScaleSlots = 4;
constexpr int kGroupW = 16;  // W tiles per raster group
// Registers per thread after the split (setmaxnreg): the producer needs few.
constexpr int kProducerRegs = 56;
constexpr int kConsumerRegs = 224;
static_assert(kProducerRegs * 128 + kConsumerRegs * kConsumerThreads <= 65536, "register file");

// The copy engine's views of the operands, built by the launcher.
struct TensorMaps {
  CUtensorMap x;       // [M, K] 16-bit, boxes 64 k x BT / kCluster tokens, 128-byte swizzle
  CUtensorMap values;  // [N / 16, K / 64 * words] uint32 (a layout tile is 256 or 64 words), boxes of 8 tiles
  CUtensorMap meta;    // [N / 16, K / 64 * 32] uint32, boxes 32 x 8
  CUtensorMap scales;  // int4: [N, groups] float32, boxes 4 x 128
  CUtensorMap zeros;   // likewise, with zero points
};

// A metadata word that is valid for any values (positions 0 and 1 in every
// group): what warps past the last W row multiply by, since an invalid word
// (0b0000 fields, as stale or zeroed shared memory may hold) is undefined.
constexpr uint32_t kFillerMeta = 0x44444444u;

template <int kBT_, int kKT_, int kStages_, int kCluster_>
struct Tile {
  static constexpr int kBT = kBT_;  // tokens: the wgmma's N
  static constexpr int kCluster = kCluster_;  // blocks sharing the x box (multicast)
  static constexpr int kKT = kKT_;  // layout tiles (64 k) per stage; K a multiple of 64 kKT
  static constexpr int kStages = kStages_;
  static constexpr int kAcc = kBT / 2;  // f32 accumulators per consumer thread
  static_assert(kBT == 64 || kBT == 128 || kBT == 256, "the generated wgmma.sp shapes");
  static_assert(kKT == 1, "a W box is one tile wide (256 words, the copy engine's limit)");
  // Each block's share of the box is whole 8-row swizzle periods.
  static_assert(kCluster >= 1 && kCluster <= 4 && kBT % (8 * kCluster) == 0, "x box split");
};

// Shared memory of one stage, 1024-byte aligned (the x swizzle's period):
// [x boxes | values, tile row major | metadata, tile row major | scales |
// zero points], the last two for int4 values only.
template <typename Cfg, int kBits, bool kZeros>
struct Smem {
  static constexpr int kXAtomBytes = Cfg::kBT * 128;  // BT rows of 64 k
  static constexpr int kX = 0;
  static constexpr int kVal = kX + Cfg::kKT * kXAtomBytes;
  static constexpr int kMeta = kVal + kTilesW * Cfg::kKT * kValTileBytes<kBits>;
  static constexpr int kS = kMeta + kTilesW * Cfg::kKT * kMetaTileBytes;
  static constexpr int kSBytes = kBits == 4 ? kBW * kScaleSlots * 4 : 0;
  static constexpr int kZ = kS + kSBytes;
  static constexpr int kZBytes = kZeros ? kSBytes : 0;
  static constexpr int kStageBytes = (kZ + kZBytes + 1023) / 1024 * 1024;
  static constexpr int kBarriers = Cfg::kStages * kStageBytes;
  // Barriers, the split-K flag, and slack to align the first stage.
  static constexpr int kBytes = kBarriers + 2 * Cfg::kStages * 8 + 16 + 1024;
};

// Consumers' barrier (named barrier 1): the producer warpgroup has left.
__device__ __forceinline__ void consumer_sync() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumerThreads) : "memory");
}

template <typename T, int kBits, bool kZeros, typename Cfg>
__global__ void __launch_bounds__(kThreads, 1)
    sparse24_wgmma_kernel(const Sparse24Params p, const SplitK sk, const __grid_constant__ TensorMaps maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(kBits == 16 || (kBits == 4 && Cfg::kKT == 1), "int4: one group per stage");
  using S = Smem<Cfg, kBits, kZeros>;
  constexpr int kValBytes = kValTileBytes<kBits>;
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* const smem = smem_raw + ((1024u - (mma::smem_u32(smem_raw) & 1023u)) & 1023u);
  uint64_t* const full = reinterpret_cast<uint64_t*>(smem + S::kBarriers);
  uint64_t* const empty = full + Cfg::kStages;
  int* const flag = reinterpret_cast<int*>(empty + Cfg::kStages);

  // Output tile of this block (see the header): a cluster covers kCluster
  // consecutive W tiles of one token tile, clusters go in groups of kGroupW
  // W tiles by every token tile. Blocks past the last W row (N not a
  // multiple of the cluster's rows) still fetch and multiply their share.
  constexpr int kC = Cfg::kCluster;
  constexpr int kGroup = kGroupW / kC;  // clusters' W tiles per group
  const unsigned rank = kC > 1 ? tma::cluster_rank() : 0u;
  const int64_t tiles_w = (p.n + kBW * kC - 1) / (kBW * kC);  // of the clusters
  const int64_t tiles_t = (p.m + Cfg::kBT - 1) / Cfg::kBT;
  const int64_t tile = blockIdx.x;  // split-K's index of this block's output tile
  const int64_t cluster = tile / kC;
  const int64_t group = cluster / (kGroup * tiles_t), in_group = cluster % (kGroup * tiles_t);
  const int64_t first_w = group * kGroup;
  const int64_t width = min(int64_t(kGroup), tiles_w - first_w);
  const int64_t w0 = ((first_w + in_group % width) * kC + rank) * kBW;  // first W row
  const int64_t m0 = (in_group / width) * Cfg::kBT;                      // first token
  const int split = int(blockIdx.y);
  const int it0 = split * sk.iters_per_split;
  const int n_iters = min(sk.iters_per_split, sk.iters - it0);
  // Layout tile rows of this block inside W (N is a multiple of 16).
  const int rows_valid = int(max(int64_t(0), min(int64_t(kTilesW), (p.n - w0) / kTileRows)));
  const int tid = threadIdx.x;

  if (tid == 0) {
    for (int s = 0; s < Cfg::kStages; ++s) {
      tma::barrier_init(&full[s], 1);
      tma::barrier_init(&empty[s], kConsumerWarps * kC);
    }
    tma::fence_barrier_init();
  }
  if constexpr (kC > 1)
    tma::cluster_sync();  // every block's barriers exist before any copy lands in them
  else
    __syncthreads();

  if (tid < 128) {
    // Producer warpgroup: one thread issues every copy.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegs));
    if (tid != 0) return;
    tma::prefetch_map(&maps.x);
    tma::prefetch_map(&maps.values);
    tma::prefetch_map(&maps.meta);
    const int gs = int(p.group_size);
    // Stage st's use u (iteration u * kStages + st) may start once the
    // consumers (of the whole cluster) have released use u - 1.
    auto wait_empty = [&](int st, int use) { tma::wait(&empty[st], (use + 1) & 1); };
    constexpr int kXShareRows = Cfg::kBT / kC, kXShareBytes = kXShareRows * 128;
    for (int i = 0; i < n_iters; ++i) {
      const int st = i % Cfg::kStages;
      if (i >= Cfg::kStages) wait_empty(st, i / Cfg::kStages);
      uint8_t* const stage = smem + st * S::kStageBytes;
      const int64_t kt0 = int64_t(it0 + i) * Cfg::kKT;
      // The whole x box arrives (kC shares, one from each block), and this
      // block's W boxes (rows past N arrive as zeros, and count).
      tma::arrive_expect_tx(&full[st], unsigned(Cfg::kKT * (S::kXAtomBytes + kTilesW * (kValBytes + kMetaTileBytes)) +
                                                S::kSBytes + S::kZBytes));
      for (int a = 0; a < Cfg::kKT; ++a) {
        uint8_t* const atom = stage + S::kX + a * S::kXAtomBytes;
        const int k = int((kt0 + a) * kTileK);
        if constexpr (kC > 1)
          tma::load_2d_multicast(atom + rank * kXShareBytes, &maps.x, k, int(m0 + rank * kXShareRows), &full[st],
                                 uint16_t((1u << kC) - 1));
        else
          tma::load_2d(atom, &maps.x, k, int(m0), &full[st]);
      }
      const int row_tile = int(w0 / kTileRows);
      tma::load_2d(stage + S::kVal, &maps.values, int(kt0 * (kValBytes / 4)), row_tile, &full[st]);
      tma::load_2d(stage + S::kMeta, &maps.meta, int(kt0 * (kMetaTileBytes / 4)), row_tile, &full[st]);
      if constexpr (kBits == 4) {
        const int g0 = int(kt0 * kTileK / gs) & ~(kScaleSlots - 1);
        tma::load_2d(stage + S::kS, &maps.scales, g0, int(w0), &full[st]);
        if constexpr (kZeros) tma::load_2d(stage + S::kZ, &maps.zeros, g0, int(w0), &full[st]);
      }
    }
    // Stay until the cluster has released every stage this block filled:
    // other blocks arrive on its barriers until then.
    if constexpr (kC > 1)
      for (int i = max(0, n_iters - Cfg::kStages); i < n_iters; ++i) wait_empty(i % Cfg::kStages, i / Cfg::kStages + 1);
    return;
  }

  // Consumers: warp cwarp owns layout tile row cwarp of the block, which is
  // rows 16 (cwarp % 4) .. + 15 of its warpgroup's 64.
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegs));
  const int ctid = tid - 128, lane = tid & 31, cwarp = ctid >> 5;
  const bool rows_here = cwarp < rows_valid;

  float acc[Cfg::kAcc];
#pragma unroll
  for (int i = 0; i < Cfg::kAcc; ++i) acc[i] = 0.f;

  // A fragments and metadata of one stage.
  struct Frag {
    uint32_t a[Cfg::kKT][2][4];
    uint32_t e[Cfg::kKT];
  };
  auto load_frag = [&](const uint8_t* stage, int stage_k0, Frag& f) {
#pragma unroll
    for (int kt = 0; kt < Cfg::kKT; ++kt) {
      const int tile = cwarp * Cfg::kKT + kt;
      if (rows_here) {
        f.e[kt] = *reinterpret_cast<const uint32_t*>(stage + S::kMeta + tile * kMetaTileBytes + lane * 4);
        if constexpr (kBits == 16) {
#pragma unroll
          for (int s = 0; s < 2; ++s) {
            const uint4 v = *reinterpret_cast<const uint4*>(stage + S::kVal + tile * kValBytes + s * 512 + lane * 16);
            f.a[kt][s][0] = v.x;
            f.a[kt][s][1] = v.y;
            f.a[kt][s][2] = v.z;
            f.a[kt][s][3] = v.w;
          }
        } else {
          // Rows g and g + 8 of the warp's tile; the stage's group sits at
          // slot group % 4 of the box.
          const uint2 q = *reinterpret_cast<const uint2*>(stage + S::kVal + tile * kValBytes + lane * 8);
          const int slot = (stage_k0 / int(p.group_size)) & (kScaleSlots - 1);
          const int r_lo = 16 * cwarp + (lane >> 2), r_hi = r_lo + 8;
          const float* const sr = reinterpret_cast<const float*>(stage + S::kS);
          [[maybe_unused]] const float* const zr = reinterpret_cast<const float*>(stage + S::kZ);
          const s24::RowPairScales sc = s24::row_pair_scales<T, kZeros>(
              sr[r_lo * kScaleSlots + slot], sr[r_hi * kScaleSlots + slot],
              kZeros ? zr[r_lo * kScaleSlots + slot] : 0.f, kZeros ? zr[r_hi * kScaleSlots + slot] : 0.f);
          s24::dequant_int4_step<T, kZeros>(q.x, sc, f.a[kt][0]);
          s24::dequant_int4_step<T, kZeros>(q.y, sc, f.a[kt][1]);
        }
      } else {
        f.e[kt] = kFillerMeta;
#pragma unroll
        for (int s = 0; s < 2; ++s)
#pragma unroll
          for (int r = 0; r < 4; ++r) f.a[kt][s][r] = 0u;
      }
    }
  };
  auto fence_frag = [](Frag& f) {
#pragma unroll
    for (int kt = 0; kt < Cfg::kKT; ++kt) {
      wgmma::fence_operand(f.e[kt]);
#pragma unroll
      for (int s = 0; s < 2; ++s) wgmma::fence_operands(f.a[kt][s]);
    }
  };

  // One arrival per consumer warp on stage st's "empty" barrier in every
  // block of the cluster (the warp's wgmmas that read it have retired).
  auto release = [&](int st) {
    __syncwarp();
    if constexpr (kC > 1) {
      if (lane < kC) tma::arrive_cluster(&empty[st], unsigned(lane));
    } else {
      if (lane == 0) tma::arrive(&empty[st]);
    }
  };

  // Stage i's wgmmas run while stage i + 1's fragments load; fragments
  // alternate between two register sets because an in-flight wgmma still
  // reads the other one. Stage i - 1 is released once wait_group<1> has
  // retired its wgmmas.
  Frag frag0{}, frag1{};
  auto step = [&](int i, Frag& cur, Frag& prev) {
    const int st = i % Cfg::kStages;
    tma::wait(&full[st], (i / Cfg::kStages) & 1);
    const uint8_t* const stage = smem + st * S::kStageBytes;
    load_frag(stage, (it0 + i) * Cfg::kKT * kTileK, cur);
    wgmma::fence();
    const uint32_t xs = mma::smem_u32(stage + S::kX);
#pragma unroll
    for (int kt = 0; kt < Cfg::kKT; ++kt) {
      const uint32_t atom = xs + kt * S::kXAtomBytes;
      wgmma::MmaSpRS<T, Cfg::kBT>::template mma<0>(acc, cur.a[kt][0], wgmma::desc_k_major_sw128(atom), cur.e[kt]);
      wgmma::MmaSpRS<T, Cfg::kBT>::template mma<1>(acc, cur.a[kt][1], wgmma::desc_k_major_sw128(atom + 64),
                                                   cur.e[kt]);
    }
    wgmma::commit_group();
    wgmma::wait_group<1>();
    fence_frag(prev);
    if (i > 0) release((i - 1) % Cfg::kStages);
  };
  for (int i = 0; i < n_iters; i += 2) {
    step(i, frag0, frag1);
    if (i + 1 < n_iters) step(i + 1, frag1, frag0);
  }
  wgmma::wait_group<0>();
  wgmma::fence_operands(acc);
  if (n_iters > 0) release((n_iters - 1) % Cfg::kStages);  // the producers' exit waits for it

  if (rows_valid == 0) return;  // a block past the last W row (whole block: no split-K barrier waits)
  if (sk.splits > 1) {
    float4* const tile_partials = sk.partials + tile * sk.splits * (Cfg::kAcc / 4) * kConsumerThreads;
    if (!wo_mma::sum_split_partials<Cfg::kAcc, kConsumerThreads>(
            tile_partials, sk.splits, split, ctid, acc, flag, consumer_sync,
            [&] { return split_k::arrive(sk.counters + tile, sk.tag, sk.splits); }))
      return;
  }

  // W rows are output columns: this lane's are 16 cwarp + g (+ 8) of the block.
  if (!rows_here) return;
  wgmma::store_transposed_acc<Cfg::kBT>(acc, static_cast<T*>(p.out), p.out_row_stride, w0 + 16 * cwarp + (lane >> 2),
                                        p.n, m0, p.m, p.bias, lane & 3,
                                        [](float v) { return mma::Packed<T>::from_float(v); });
#endif
}

}  // namespace slimops::cuda::s24_wgmma
