// The Hopper (sm_90a) weight-only GEMM kernel for medium and large M
// (wo_gemm_wgmma.cu launches it).
//
// Like the mma.sync kernel (wo_gemm_mma_kernel.cuh) it computes out^T = W x^T
// with the dequantised weights as the A operand, straight from registers,
// and x as the B operand; but each consumer warpgroup issues wgmma
// m64nBMk16, one instruction for 64 weight rows by all BM rows of x, which
// the tensor cores read from shared memory themselves. The mma.sync kernel
// spends its issue slots on 16x8 mmas and x fragments, which caps it from
// M = 64 on (bench/NOTES.md); here the consumer warps only dequantise.
//
// A block is one producer warpgroup and two consumer warpgroups (BN = 128
// weight rows, 64 each). Per pipeline stage of kStageK k, the producer's one
// elected thread has the copy engine (TMA, tensor maps from the launcher)
// bring x's rows in the 128-byte swizzle wgmma reads (one 64-wide box per
// 64 k), the raw weight bytes of every row (swizzled to the row length, so
// the consumers' 16-bit reads hit 32 banks), and 8 scales (and zero points)
// per row around the stage's groups; a "full" mbarrier counts them in.
// Consumers dequantise the stage into A fragments, issue its wgmmas, and once
// the previous stage's wgmmas have retired, arrive on that stage's "empty"
// barrier so the producer may refill it. No block-wide barrier in the loop.
//
// Dequantising: a lane needs, for weight rows g and g + 8 of its warp's 16,
// the k pairs (2t, 2t+1) and (2t+8, 2t+9) of each 16-k step (the standard A
// fragment, since B is read by the hardware in plain k order). In both
// layouts (common/wo_gemm_params.h) those are bytes 2t, 2t+1, 2t+8, 2t+9 of a
// 16-byte chunk: int8 one step per chunk, int4 two (low nibbles, then high).
// Two 16-bit shared loads make that word, and mma_dequant.cuh's bit tricks
// turn it into M + q pairs. Scales: symmetric weights as ((M + q) - (M + z)) s
// in packed half/bf16 (exact difference, one rounding); with zero points,
// (M + q) s - (M + z) s in float32, rounded once, so a fractional zero point
// costs nothing in accuracy. Weights are rounded to x's type once each.
//
// Split-K as in split_k_partials.cuh, among the consumer threads.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "../../common/wo_gemm_params.h"
#include "../common/tma.cuh"
#include "../common/wgmma.cuh"
#include "mma_dequant.cuh"
#include "mma_primitives.cuh"
#include "split_k_partials.cuh"

namespace slimops::cuda::wo_wgmma {

using wo_mma::SplitK;

constexpr int kRowsPerWarpGroup = 64;  // wgmma's M
constexpr int kConsumerGroups = 2;
constexpr int kBN = kRowsPerWarpGroup * kConsumerGroups;
constexpr int kThreads = 128 * (1 + kConsumerGroups);
constexpr int kConsumerThreads = 128 * kConsumerGroups;
// Groups per row and stage in shared memory. A TMA box must start 16 bytes
// into a row (a box at group 1 of a float32 row faulted as an illegal
// instruction), so the box starts at the stage's first group rounded down
// to a multiple of 4, and 8 groups cover the at most 4 a stage spans.
constexpr int kScaleSlots = 8;
// Registers per thread after the split (setmaxnreg): the producer needs few.
constexpr int kProducerRegs = 56;
constexpr int kConsumerRegs = 224;
static_assert(kProducerRegs * 128 + kConsumerRegs * kConsumerThreads <= 65536, "register file");

template <int kBM_, int kStageK_, int kStages_>
struct Tile {
  static constexpr int kBM = kBM_;  // rows of x: the wgmma's N
  static constexpr int kStageK = kStageK_;
  static constexpr int kStages = kStages_;
  static constexpr int kSteps = kStageK / 16;  // wgmma k steps per stage
  static constexpr int kXAtoms = kStageK / 64;  // 64-wide x boxes per stage
  static constexpr int kAcc = kBM / 2;          // f32 accumulators per consumer thread
  static_assert(kBM % 16 == 0 && kBM >= 16 && kBM <= 256, "wgmma N; one TMA box of x rows");
  static_assert(kStageK == 64 || kStageK == 128, "whole x boxes; weight rows of 32 to 128 bytes");
};

// Shared memory of one stage, every part 1024-byte aligned (the swizzles'
// period): [x boxes | weights | scales | zero points].
template <typename Cfg, int kBits>
struct Smem {
  static constexpr int kRowBytes = Cfg::kStageK * kBits / 8;  // weight bytes per row and stage: 32..128
  static constexpr int kChunks = kRowBytes / 16;
  static constexpr int kXAtomBytes = Cfg::kBM * 128;
  static constexpr int kXBytes = Cfg::kXAtoms * kXAtomBytes;
  static constexpr int kWBytes = kBN * kRowBytes;
  static constexpr int kSBytes = kBN * kScaleSlots * 4;
  static constexpr int kX = 0;
  static constexpr int kW = kX + kXBytes;
  static constexpr int kS = kW + kWBytes;
  static constexpr int kZ = kS + kSBytes;
  static constexpr int kStageBytes = (kZ + kSBytes + 1023) / 1024 * 1024;
  // Barriers after the stages; + slack to align the first stage.
  static constexpr int kBarriers = Cfg::kStages * kStageBytes;
  static constexpr int kBytes = kBarriers + 2 * Cfg::kStages * 8 + 16 + 1024;
  static_assert(kXAtomBytes % 1024 == 0 && kWBytes % 1024 == 0 && kSBytes % 1024 == 0, "aligned parts");
};

// Byte offset of chunk c of weight row r in the TMA swizzle that matches the
// row length (32, 64 or 128 bytes): chunk bits XOR-ed with the 128-byte line
// index. The 8 rows a warp reads at once land in 8 different bank groups.
template <int kRowBytes>
__device__ __forceinline__ int w_offset(int r, int c) {
  const int off = r * kRowBytes + 16 * c;
  return off ^ (((off >> 7) & (kRowBytes / 16 - 1)) << 4);
}

// Bytes 2t, 2t+1, 2t+8, 2t+9 of a 16-byte chunk (see the header comment), in
// that order for int8; for int4 interleaved as 2t, 2t+8, 2t+1, 2t+9, which
// puts each A register's nibble pair one shift apart
// (mma::raw_int4_interleaved): the same single prmt, two fewer per word.
template <int kBits>
__device__ __forceinline__ uint32_t fragment_word(const uint8_t* chunk, int t) {
  const uint32_t lo = *reinterpret_cast<const uint16_t*>(chunk + 2 * t);
  const uint32_t hi = *reinterpret_cast<const uint16_t*>(chunk + 8 + 2 * t);
  return __byte_perm(lo, hi, kBits == 4 ? 0x5140 : 0x5410);
}

// A raw pair (M + q) -> (q - z) s in float32, rounded once to T; c = -(M + z) s.
template <typename T>
__device__ __forceinline__ uint32_t scale_raw_f32(uint32_t v, float s, float c) {
  using P = mma::Packed<T>;
  float lo, hi;
  if constexpr (std::is_same_v<T, __half>) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&v));
    lo = f.x;
    hi = f.y;
  } else {
    lo = __uint_as_float(v << 16);
    hi = __uint_as_float(v & 0xFFFF0000u);
  }
  return P::pack(fmaf(lo, s, c), fmaf(hi, s, c));
}

// Copy-engine views of the operands, built by the launcher.
struct TensorMaps {
  CUtensorMap x;       // [M, K] of 16-bit elements, boxes 64 x BM, 128-byte swizzle
  CUtensorMap w;       // [N, K * bits / 8] bytes, boxes kRowBytes x 128, swizzle of kRowBytes
  CUtensorMap scales;  // [N, groups] floats, boxes 8 x 128 (unused when groups == 1)
  CUtensorMap zeros;   // likewise, when p.zeros is set
};

// Consumers' barrier (named barrier 1): the producer warpgroup has left.
__device__ __forceinline__ void consumer_sync() {
  asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumerThreads) : "memory");
}

template <typename T, int kBits, typename Cfg, bool kZeros>
__global__ void __launch_bounds__(kThreads, 1)
    wo_gemm_wgmma_kernel(const WoGemmParams p, const SplitK sk, const __grid_constant__ TensorMaps maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = Smem<Cfg, kBits>;
  using P = mma::Packed<T>;
  constexpr float kM = mma::kRawOffset<T, kBits>;
  extern __shared__ __align__(1024) uint8_t smem_raw[];
  uint8_t* const smem = smem_raw + ((1024u - (mma::smem_u32(smem_raw) & 1023u)) & 1023u);
  uint64_t* const full = reinterpret_cast<uint64_t*>(smem + S::kBarriers);
  uint64_t* const empty = full + Cfg::kStages;
  int* const flag = reinterpret_cast<int*>(empty + Cfg::kStages);

  const int tid = threadIdx.x;
  const int64_t m0 = int64_t(blockIdx.x) * Cfg::kBM;
  const int64_t n0 = int64_t(blockIdx.y) * kBN;
  const int split = int(blockIdx.z);
  const int it0 = split * sk.iters_per_split;
  const int n_iters = min(sk.iters_per_split, sk.iters - it0);
  const int groups = int(p.k / p.group_size);
  const bool per_channel = groups == 1;
  const int gs = int(p.group_size);
  const bool one_group_per_stage = per_channel || gs % Cfg::kStageK == 0;

  if (tid == 0) {
    for (int s = 0; s < Cfg::kStages; ++s) {
      tma::barrier_init(&full[s], 1);
      tma::barrier_init(&empty[s], kConsumerThreads);
    }
    tma::fence_barrier_init();
  }
  __syncthreads();

  if (tid < 128) {
    // Producer warpgroup: one thread issues every copy.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kProducerRegs));
    if (tid != 0) return;
    tma::prefetch_map(&maps.x);
    tma::prefetch_map(&maps.w);
    constexpr unsigned kXWBytes = S::kXBytes + S::kWBytes;
    const unsigned stage_bytes = kXWBytes + (per_channel ? 0u : (kZeros ? 2u : 1u) * S::kSBytes);
    for (int i = 0, st = 0, parity = 0; i < n_iters; ++i) {
      if (i >= Cfg::kStages) tma::wait(&empty[st], parity ^ 1);
      uint8_t* const stage = smem + st * S::kStageBytes;
      tma::arrive_expect_tx(&full[st], stage_bytes);
      const int k0 = (it0 + i) * Cfg::kStageK;
#pragma unroll
      for (int a = 0; a < Cfg::kXAtoms; ++a)
        tma::load_2d(stage + S::kX + a * S::kXAtomBytes, &maps.x, k0 + 64 * a, int(m0), &full[st]);
      tma::load_2d(stage + S::kW, &maps.w, k0 * kBits / 8, int(n0), &full[st]);
      if (!per_channel) {
        const int g0 = (k0 / gs) & ~3;
        tma::load_2d(stage + S::kS, &maps.scales, g0, int(n0), &full[st]);
        if constexpr (kZeros) tma::load_2d(stage + S::kZ, &maps.zeros, g0, int(n0), &full[st]);
      }
      if (++st == Cfg::kStages) st = 0, parity ^= 1;
    }
    return;
  }

  // Consumers.
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kConsumerRegs));
  const int ctid = tid - 128, lane = tid & 31, cwarp = ctid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int row_a = 16 * cwarp + g;  // this lane's weight rows in the tile: row_a, row_a + 8
  // Per-channel scales (and zero points) stay in registers.
  float pc_s[2] = {0.f, 0.f}, pc_c[2] = {0.f, 0.f};
  if (per_channel) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t n = min(n0 + row_a + 8 * h, p.n - 1);
      pc_s[h] = p.scales[n];
      pc_c[h] = -(kM + (kZeros ? p.zeros[n] : default_zero(kBits))) * pc_s[h];
    }
  }

  // A fragments of one stage: kSteps x 4 registers (rows row_a / row_a + 8,
  // k pairs (2t, 2t+1) / (2t+8, 2t+9)).
  using Frag = uint32_t[Cfg::kSteps][4];
  // group / in_group: the group of the stage's first k and that k's offset
  // in it (running counters, advanced once per stage by step() below).
  auto dequantise = [&](const uint8_t* stage, int group, int in_group, Frag& a) {
    uint32_t raw[Cfg::kSteps][4];  // M + q before scaling, in fragment order
#pragma unroll
    for (int c = 0; c < S::kChunks; ++c) {
      const uint32_t wa = fragment_word<kBits>(stage + S::kW + w_offset<S::kRowBytes>(row_a, c), t);
      const uint32_t wb = fragment_word<kBits>(stage + S::kW + w_offset<S::kRowBytes>(row_a + 8, c), t);
      if constexpr (kBits == 4) {
        uint32_t lo[4], hi[4];
        mma::raw_int4_interleaved<T>(wa, lo);
        mma::raw_int4_interleaved<T>(wb, hi);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          raw[2 * c + h][0] = lo[2 * h];
          raw[2 * c + h][1] = hi[2 * h];
          raw[2 * c + h][2] = lo[2 * h + 1];
          raw[2 * c + h][3] = hi[2 * h + 1];
        }
      } else {
        uint32_t lo[2], hi[2];
        mma::raw_int8<T>(wa, lo);
        mma::raw_int8<T>(wb, hi);
        raw[c][0] = lo[0];
        raw[c][1] = hi[0];
        raw[c][2] = lo[1];
        raw[c][3] = hi[1];
      }
    }
    // Scales of rows row_a and row_a + 8 for one group, in the form the
    // dequantisation takes them.
    const float* const ss = reinterpret_cast<const float*>(stage + S::kS);
    const float* const zs = reinterpret_cast<const float*>(stage + S::kZ);
    struct RowScales {
      float sa, sb, ca, cb;  // kZeros: s and -(M + z) s, float32
      uint32_t s2a, s2b;     // otherwise: s as packed pairs
    };
    auto row_scales = [&](int slot) {
      RowScales r{};
      if (per_channel) {
        r.sa = pc_s[0], r.sb = pc_s[1], r.ca = pc_c[0], r.cb = pc_c[1];
      } else {
        r.sa = ss[row_a * kScaleSlots + slot];
        r.sb = ss[(row_a + 8) * kScaleSlots + slot];
        if constexpr (kZeros) {
          r.ca = -(kM + zs[row_a * kScaleSlots + slot]) * r.sa;
          r.cb = -(kM + zs[(row_a + 8) * kScaleSlots + slot]) * r.sb;
        }
      }
      if constexpr (!kZeros) r.s2a = P::splat(r.sa), r.s2b = P::splat(r.sb);
      return r;
    };
    auto apply = [&](const uint32_t (&v)[4], const RowScales& r, uint32_t (&out)[4]) {
      if constexpr (kZeros) {
        out[0] = scale_raw_f32<T>(v[0], r.sa, r.ca);
        out[1] = scale_raw_f32<T>(v[1], r.sb, r.cb);
        out[2] = scale_raw_f32<T>(v[2], r.sa, r.ca);
        out[3] = scale_raw_f32<T>(v[3], r.sb, r.cb);
      } else if constexpr (kM + default_zero(kBits) == 0.f) {
        // bf16 int8: the raw value is q itself, only the scale is left.
        out[0] = P::fma(v[0], r.s2a, 0u);
        out[1] = P::fma(v[1], r.s2b, 0u);
        out[2] = P::fma(v[2], r.s2a, 0u);
        out[3] = P::fma(v[3], r.s2b, 0u);
      } else {
        const uint32_t zc2 = P::splat(-(kM + default_zero(kBits)));
        out[0] = mma::scale_raw<T>(v[0], zc2, r.s2a);
        out[1] = mma::scale_raw<T>(v[1], zc2, r.s2b);
        out[2] = mma::scale_raw<T>(v[2], zc2, r.s2a);
        out[3] = mma::scale_raw<T>(v[3], zc2, r.s2b);
      }
    };
    // Slot of a group among the 8 in shared memory: the first is the
    // stage's first group rounded down to a multiple of 4.
    if (one_group_per_stage) {
      // The whole stage lies in one group: its scales once.
      const RowScales r = row_scales(group & 3);
#pragma unroll
      for (int s = 0; s < Cfg::kSteps; ++s) apply(raw[s], r, a[s]);
    } else {
      // Groups of 32 to 96 k, or straddling stages: walk the k steps.
      int slot = group & 3;
#pragma unroll
      for (int s = 0; s < Cfg::kSteps; ++s) {
        apply(raw[s], row_scales(slot), a[s]);
        in_group += 16;
        if (in_group == gs) {
          in_group = 0;
          ++slot;
        }
      }
    }
  };

  float acc[Cfg::kAcc];
#pragma unroll
  for (int i = 0; i < Cfg::kAcc; ++i) acc[i] = 0.f;

  // Stage i's wgmmas run while stage i + 1 is dequantised; A fragments
  // alternate between two register sets because an in-flight wgmma still
  // reads the other one. Stage i - 1 is released once wait_group<1> has
  // retired its wgmmas.
  //
  // Everything a stage needs besides its data is kept as running counters
  // (ring slot and parity, group cursor, x descriptor): at ~180 instructions
  // of dequantisation per warp and stage, the divisions by kStages and the
  // group size and the per-step descriptor builds had added ~100 more
  // (bench/NOTES.md, session 11).
  Frag frag0 = {}, frag1 = {};
  int st = 0;
  unsigned parity = 0;
  const int k_first = it0 * Cfg::kStageK;
  int group = per_channel ? 0 : k_first / gs;
  int in_group = per_channel ? 0 : k_first - group * gs;
  // The x box of stage slot 0; slot st's is st * kStageBytes further (the
  // descriptor's address field counts 16-byte units and cannot carry:
  // shared memory ends below 2^18 bytes).
  const uint64_t x_desc0 = wgmma::desc_k_major_sw128(mma::smem_u32(smem + S::kX));
  auto step = [&](int i, Frag& cur, Frag& prev) {
    tma::wait(&full[st], parity);
    const uint8_t* const stage = smem + st * S::kStageBytes;
    dequantise(stage, group, in_group, cur);
    wgmma::fence();
    const uint64_t x_desc = x_desc0 + uint64_t(st * (S::kStageBytes >> 4));
#pragma unroll
    for (int s = 0; s < Cfg::kSteps; ++s)
      wgmma::MmaRS<T, Cfg::kBM>::mma(acc, cur[s], x_desc + ((s / 4) * S::kXAtomBytes + 32 * (s % 4)) / 16);
    wgmma::commit_group();
    wgmma::wait_group<1>();
#pragma unroll
    for (int s = 0; s < Cfg::kSteps; ++s) wgmma::fence_operands(prev[s]);
    if (i > 0) tma::arrive(&empty[st == 0 ? Cfg::kStages - 1 : st - 1]);
    if (++st == Cfg::kStages) st = 0, parity ^= 1u;
    if (!per_channel)
      for (in_group += Cfg::kStageK; in_group >= gs; in_group -= gs) ++group;
  };
  for (int i = 0; i < n_iters; i += 2) {
    step(i, frag0, frag1);
    if (i + 1 < n_iters) step(i + 1, frag1, frag0);
  }
  wgmma::wait_group<0>();
  wgmma::fence_operands(acc);

  if (sk.splits > 1) {
    const int64_t tile = int64_t(blockIdx.y) * gridDim.x + blockIdx.x;
    if (!wo_mma::reduce_split_k<Cfg::kAcc, kConsumerThreads>(sk, tile, split, ctid, acc, flag, consumer_sync))
      return;
  }

  // Weight rows are output columns: this lane's are row_a (+ 8) of the tile.
  wgmma::store_transposed_acc<Cfg::kBM>(acc, static_cast<T*>(p.out), p.out_row_stride, n0 + row_a, p.n, m0, p.m,
                                        p.bias, t, [](float v) { return P::from_float(v); });
#endif
}

}  // namespace slimops::cuda::wo_wgmma
