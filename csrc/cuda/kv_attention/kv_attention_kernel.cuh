// Split-KV (flash-decoding) attention over a KV cache, fused with the append
// of the new tokens; device code of kv_attention.cu.
//
// Work split. Block ((split * m_tiles + m tile) * hkv + kv head, sequence) owns 16
// packed query rows (row = query position * group + head within the group),
// so one kv head's K and V tiles feed every query head of its GQA group and
// are read once. The keys of the sequence are cut into `splits` equal runs of
// whole 64-key tiles, sized from the real length on the device: a split past
// the end does no work and reports lse = -inf to the combine kernel.
//
// Pipeline. Tiles of K and V (64 keys; int8: 128 keys, the same bytes) stream
// into shared memory with cp.async, kStages deep; each of the 4 warps takes
// a quarter of every stage's keys (16; int8: 32) with its own online-softmax
// state (m, l, O), and the warps are merged once at the end.
//
// Tensor cores without ldmatrix. Both matmuls use mma.sync m16n8k16 with the
// query rows as A. Since a dot product does not care about the order of its
// terms, the head dim of S = Q K^T is permuted so that each lane's B operand
// is whole 16-byte runs of one key row (the same code for bf16/fp16 and
// int8 caches, which have no 8-bit transposing ldmatrix on sm_90), and the
// output columns of O = P V are permuted so that each lane's B operand is a
// contiguous run of d of four keys; the epilogue undoes that permutation.
// The shared-memory rows are XOR-swizzled per 16-byte chunk so that both
// access patterns are free of bank conflicts (2-way at int8 d = 64).
//
// int8 caches. Both matmuls run in fp16 whatever the dtype: int8 -> fp16 is
// exact and costs one prmt + one packed subtract per pair (bf16 would need
// fp32 round trips). q is brought into fp16 range with a power-of-two scale
// per row, which is exact. The per-key k scale multiplies the fp32 score, the
// v scale multiplies P before it is rounded to fp16.
//
// Append. Keys at positions >= cache_seqlens[b] are read from k_new / v_new
// (no grid-wide sync); the m tile 0 block of the split that holds a new
// position also writes it to the cache (int8: quantises it there; every block
// that attends over it quantises it the same way, so all see the values a
// later call reads back).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "../../common/kv_attention_params.h"
#include "../wo_gemm/mma_primitives.cuh"

namespace slimops::cuda::kv_attn {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTileN = 64;  // keys per sub-tile: 16 per warp (int8 stages hold two)
constexpr int kRowsM = 16;  // packed query rows per block (one mma M)
constexpr int kMaxSplits = 128;
constexpr float kLog2e = 1.4426950408889634f;

struct KernelArgs {
  KvAttentionParams p;
  int splits;     // KV splits per (sequence, kv head, m tile)
  int m_tiles;    // ceil(rows / 16)
  int rows;       // packed query rows per kv head: group * sq
  int group;      // hq / hkv
  float* ws_out;  // [b, hkv, splits, rows, d] fp32, when splits > 1
  float* ws_lse;  // [b, hkv, splits, rows], log2 domain
  bool pdl;       // the combine kernel is a programmatic dependent launch
};

template <int kD, bool kInt8>
struct Cfg {
  static constexpr int kElemBytes = kInt8 ? 1 : 2;
  // Stages are sized in bytes: an int8 stage holds 128 keys (two 64-key
  // sub-tiles), as many bytes as a 64-key 16-bit stage.
  static constexpr int kTileN = kInt8 ? 2 * kv_attn::kTileN : kv_attn::kTileN;
  // Keys each warp takes from a stage, in one pass: 16 (bf16/fp16) or 32
  // (int8, whose stages hold twice the keys; one softmax update and four
  // independent S chains per 32 keys, where two 16-key passes were latency-bound).
  static constexpr int kKeysPerWarp = kTileN / kWarps;
  static constexpr int kRowBytes = kD * kElemBytes;
  static constexpr int kChunks = kRowBytes / 16;  // 16-byte chunks per key row
  static constexpr int kElemsPerChunk = 16 / kElemBytes;
  static constexpr int kStepsPerChunk = kElemsPerChunk / 4;  // k-steps of 16 fed by one chunk per lane
  static constexpr int kKSteps = kD / 16;
  static constexpr int kChunksPerThread = kTileN * kChunks / kThreads;
  static constexpr int kStages = 3;
  static constexpr int kTileBytes = kTileN * kRowBytes;
  static constexpr int kScaleBytes = kInt8 ? 2 * kTileN * 4 : 0;
  static constexpr int kStageBytes = 2 * kTileBytes + kScaleBytes;
  static constexpr int kPipeBytes = kStages * kStageBytes;
  static constexpr int kOutBytes = kWarps * kRowsM * kD * 4;  // warp merge, aliases the pipeline
  static constexpr int kMainBytes = kPipeBytes > kOutBytes ? kPipeBytes : kOutBytes;
  static constexpr int kRowOffBytes = kStages * kTileN * 8 * 2;  // paged: cache and scale offsets per row
  static constexpr int kStatBytes = 2 * kWarps * kRowsM * 4;
  static constexpr int kSmemBytes = kMainBytes + kRowOffBytes + kStatBytes;
  static_assert(kChunks % 4 == 0 && kChunksPerThread >= 1, "tile shape");
};

// Chunk permutation of a key row; see the header comment. The K reads of a
// quarter warp touch rows (2k, 2k+1) x chunks {4q..4q+3}; the V reads touch
// rows {r, r+2, r+4, r+6} x two chunks that differ in bit 1 (16 chunks) or
// bit 0 (8 chunks).
template <int kChunks>
__device__ __forceinline__ int swizzle(int row, int chunk) {
  if constexpr (kChunks == 16) {
    return chunk ^ (((row & 1) << 2) ^ ((row >> 1) & 1) ^ (((row >> 2) & 1) << 2));
  } else if constexpr (kChunks == 8) {
    return chunk ^ (((row & 1) << 2) ^ (((row >> 1) & 1) << 1) ^ (((row >> 2) & 1) << 2));
  } else {
    return chunk ^ (((row >> 1) & 1) << 1);
  }
}

__device__ __forceinline__ uint4 lds128(uint32_t addr) {
  uint4 v;
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr));
  return v;
}
__device__ __forceinline__ uint2 lds64(uint32_t addr) {
  uint2 v;
  asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "r"(addr));
  return v;
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) { return __byte_perm(a, b, sel); }

// Two biased bytes (int8 ^ 0x80, in bytes 0 and 2 of the result of
// prmt(x, 0x64646464, ...)) to an exact fp16 pair: 0x64uu is 1024 + u.
__device__ __forceinline__ uint32_t biased_bytes_to_half2(uint32_t w, uint32_t sel) {
  const uint32_t h = prmt(w, 0x64646464u, sel);
  uint32_t d;
  asm("sub.f16x2 %0, %1, %2;\n" : "=r"(d) : "r"(h), "r"(0x64806480u));  // 1152 = 1024 + 128
  return d;
}

// 2^x by the MUFU unit (ex2.approx: 2 ulp, 2^-inf = 0), the log2e of the
// softmax already folded into the scores.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <typename T>
__device__ __forceinline__ float2 to_float2(uint32_t w) {
  if constexpr (std::is_same_v<T, __half>) {
    return __half22float2(*reinterpret_cast<const __half2*>(&w));
  } else {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xFFFF0000u));
  }
}

template <typename T, int kD, bool kInt8, bool kPaged>
__global__ void __launch_bounds__(kThreads, 2) kv_attention_kernel(const KernelArgs a) {
  using C = Cfg<kD, kInt8>;
  using MT = std::conditional_t<kInt8, __half, T>;  // the mma operand type
  using PM = mma::Packed<MT>;
  constexpr int S = C::kStages;
  constexpr int TN = C::kTileN;
  static_assert(TN <= kThreads, "paged row offsets: one row per thread");
  extern __shared__ __align__(16) uint8_t smem[];
  uint8_t* pipe = smem;
  int64_t* rowoff_s = reinterpret_cast<int64_t*>(smem + C::kMainBytes);  // [S][2][TN]
  float* stat_m = reinterpret_cast<float*>(smem + C::kMainBytes + C::kRowOffBytes);
  float* stat_l = stat_m + kWarps * kRowsM;
  float* out_s = reinterpret_cast<float*>(smem);

  const KvAttentionParams& p = a.p;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, c = lane % 4;
  // kv head fastest: the blocks of one (sequence, split) start together and
  // walk the same positions in the same order, so the hkv 256-byte head rows
  // of each cache row are requested close in time (DRAM page locality of the
  // [b, s, hkv, d] layout).
  const int kvh = int(blockIdx.x % uint32_t(p.hkv));
  const int rest = int(blockIdx.x / uint32_t(p.hkv));
  const int mt = rest % a.m_tiles, split = rest / a.m_tiles;
  const int b = blockIdx.y;
  const bool append = p.k_new != nullptr;
  const int seqlen = p.cache_seqlens[b];
  const int t_b = seqlen + (append ? int(p.sq) : 0);
  const int sq = int(p.sq);

  const int tiles_total = (t_b + TN - 1) / TN;
  const int tiles_per_split = (tiles_total + a.splits - 1) / a.splits;
  const int n_begin = split * tiles_per_split * TN;
  const int n_end = min(t_b, n_begin + tiles_per_split * TN);
  const int ntiles = n_end > n_begin ? (n_end - n_begin + TN - 1) / TN : 0;
  const bool owner = mt == 0;
  // Blocks walk their tiles from a rotated start (softmax does not care about
  // the order): caches whose batch / split strides are large powers of two
  // would otherwise have every sequence on the same address bits at once. The
  // rotation does not depend on the kv head (see above).
  const int rot = ntiles > 0 ? int((uint32_t(b) * 37u + uint32_t(split) * 11u) % uint32_t(ntiles)) : 0;
  auto tile_at = [&](int it) { return it + rot < ntiles ? it + rot : it + rot - ntiles; };

  const uint8_t* kc = static_cast<const uint8_t*>(p.k_cache);
  const uint8_t* vc = static_cast<const uint8_t*>(p.v_cache);
  const T* kn = static_cast<const T*>(p.k_new);
  const T* vn = static_cast<const T*>(p.v_new);
  const int64_t head_off = int64_t(kvh) * p.cache_head_stride;

  // ---- Paged: cache (and scale) offsets of the rows of a tile, one tile
  // ahead of the loads, so block_table's latency is paid once per block.
  auto fetch_page = [&](int it) -> int {
    if (!kPaged || tid >= TN || it >= ntiles) return 0;
    const int pos = n_begin + tile_at(it) * TN + tid;
    if (pos >= n_end) return 0;
    return __ldg(p.block_table + int64_t(b) * p.block_table_batch_stride + pos / int(p.block_size));
  };
  auto store_page = [&](int it, int page) {
    if (tid < TN && it < ntiles) {
      const int pos = n_begin + tile_at(it) * TN + tid;
      const int in_block = pos % int(p.block_size);
      int64_t* slot = rowoff_s + (it % S) * 2 * TN;
      slot[tid] = int64_t(page) * p.cache_batch_stride + int64_t(in_block) * p.cache_seq_stride;
      slot[TN + tid] = int64_t(page) * p.scale_batch_stride + int64_t(in_block) * p.scale_seq_stride;
    }
  };
  auto cache_row = [&](int stage, int row, int pos) -> int64_t {
    if constexpr (kPaged) return rowoff_s[stage * 2 * TN + row];
    else return int64_t(b) * p.cache_batch_stride + int64_t(pos) * p.cache_seq_stride;
  };
  auto scale_row = [&](int stage, int row, int pos) -> int64_t {
    if constexpr (kPaged) return rowoff_s[stage * 2 * TN + TN + row];
    else return int64_t(b) * p.scale_batch_stride + int64_t(pos) * p.scale_seq_stride;
  };

  // int8 append: quantise one 16-value chunk of a new row. Every lane runs it
  // (the row max is a shuffle over the kChunks lanes of the row); only
  // lanes with is_new store.
  auto quantise_chunk = [&](const T* src, uint8_t* cache, float* scale_g, uint32_t dst_s, float* scale_s,
                            bool is_new, int ch, int64_t cache_off, int64_t scale_off) {
    float x[16];
    uint4 raw[2] = {make_uint4(0, 0, 0, 0), make_uint4(0, 0, 0, 0)};
    if (is_new) {
      raw[0] = *reinterpret_cast<const uint4*>(src);
      raw[1] = *reinterpret_cast<const uint4*>(src + 8);
    }
    float amax = 0.f;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const uint32_t w[4] = {raw[h].x, raw[h].y, raw[h].z, raw[h].w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = to_float2<T>(w[i]);
        x[h * 8 + 2 * i] = f.x;
        x[h * 8 + 2 * i + 1] = f.y;
        amax = fmaxf(amax, fmaxf(fabsf(f.x), fabsf(f.y)));
      }
    }
#pragma unroll
    for (int o = 1; o < C::kChunks; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float scale = amax / 127.f;
    uint32_t qw[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint32_t word = 0;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        int q = 0;
        if (scale > 0.f) q = max(-127, min(127, __float2int_rn(x[4 * i + j] / scale)));
        word |= (uint32_t(q) & 0xFFu) << (8 * j);
      }
      qw[i] = word;
    }
    if (is_new) {
      asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst_s), "r"(qw[0]), "r"(qw[1]), "r"(qw[2]),
                   "r"(qw[3])
                   : "memory");
      if (ch == 0) *scale_s = scale;
      if (owner) {
        *reinterpret_cast<uint4*>(cache + cache_off) = make_uint4(qw[0], qw[1], qw[2], qw[3]);
        if (ch == 0) scale_g[scale_off] = scale;
      }
    }
  };

  auto load_tile = [&](int it) {
    const int stage = it % S;
    uint8_t* ks = pipe + stage * C::kStageBytes;
    uint8_t* vs = ks + C::kTileBytes;
    const int t0 = n_begin + tile_at(it) * TN;
    const bool has_new = append && t0 + TN > seqlen;  // block-uniform
#pragma unroll
    for (int i = 0; i < C::kChunksPerThread; ++i) {
      const int idx = tid + i * kThreads;
      const int row = idx / C::kChunks, ch = idx % C::kChunks;
      const int pos = t0 + row;
      const uint32_t soff = row * C::kRowBytes + swizzle<C::kChunks>(row, ch) * 16;
      const bool in_range = pos < n_end;
      const bool is_new = has_new && in_range && pos >= seqlen;
      const int64_t off = in_range ? cache_row(stage, row, pos) + head_off + ch * C::kElemsPerChunk : 0;
      if constexpr (kInt8) {
        // A row's chunks sit on kChunks adjacent lanes, so a warp with no new
        // row among its lanes skips the quantisation as a whole (its shuffles
        // stay warp-uniform). At decode one row of the tile is new: without
        // this every lane quantised zeros for every row, which made an int8
        // append cost twice an int8 attend at short contexts.
        if (has_new && __any_sync(0xffffffffu, is_new)) {
          const int64_t nofs = int64_t(b) * p.new_batch_stride + int64_t(pos - seqlen) * p.new_seq_stride +
                               int64_t(kvh) * p.new_head_stride + ch * 16;
          const int64_t soff_g = in_range ? scale_row(stage, row, pos) + kvh : 0;
          float* kss = reinterpret_cast<float*>(vs + C::kTileBytes);
          quantise_chunk(kn + (is_new ? nofs : 0), static_cast<uint8_t*>(p.k_cache), p.k_scale,
                         mma::smem_u32(ks + soff), kss + row, is_new, ch, off, soff_g);
          quantise_chunk(vn + (is_new ? nofs : 0), static_cast<uint8_t*>(p.v_cache), p.v_scale,
                         mma::smem_u32(vs + soff), kss + TN + row, is_new, ch, off, soff_g);
        }
      }
      if (!is_new) {
        mma::cp_async_16(mma::smem_u32(ks + soff), kc + off * C::kElemBytes, in_range);
        mma::cp_async_16(mma::smem_u32(vs + soff), vc + off * C::kElemBytes, in_range);
      } else if constexpr (!kInt8) {
        const int64_t nofs = int64_t(b) * p.new_batch_stride + int64_t(pos - seqlen) * p.new_seq_stride +
                             int64_t(kvh) * p.new_head_stride + ch * 8;
        mma::cp_async_16(mma::smem_u32(ks + soff), kn + nofs, true);
        mma::cp_async_16(mma::smem_u32(vs + soff), vn + nofs, true);
        if (owner) {
          const uint4 kv = *reinterpret_cast<const uint4*>(kn + nofs);
          const uint4 vv = *reinterpret_cast<const uint4*>(vn + nofs);
          *reinterpret_cast<uint4*>(static_cast<uint8_t*>(p.k_cache) + off * 2) = kv;
          *reinterpret_cast<uint4*>(static_cast<uint8_t*>(p.v_cache) + off * 2) = vv;
        }
      }
    }
    if constexpr (kInt8) {
      // [k scales of the tile | v scales of the tile], one float per thread and pass.
#pragma unroll
      for (int i = 0; i < 2 * TN / kThreads; ++i) {
        const int idx = tid + i * kThreads;
        const int row = idx % TN;
        const int pos = t0 + row;
        const bool in_range = pos < n_end;
        const bool is_new = append && in_range && pos >= seqlen;
        float* dst = reinterpret_cast<float*>(vs + C::kTileBytes) + idx;
        const float* src = idx < TN ? p.k_scale : p.v_scale;
        if (!is_new) {
          const int64_t so = in_range ? scale_row(stage, row, pos) + kvh : 0;
          mma::cp_async_4(mma::smem_u32(dst), src + so, in_range);
        }
      }
    }
  };

  // ---- Query fragments (A of S = Q K^T) in the permuted head-dim order.
  const int rows_here = a.rows - mt * kRowsM;
  int row_lim[2];
  float row_scale[2];
  uint32_t qf[C::kKSteps][4];
  {
    const T* q = static_cast<const T*>(p.q);
    const T* qrow[2];
    bool ok[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int lr = g + 8 * r;
      ok[r] = lr < rows_here;
      const int R = mt * kRowsM + (ok[r] ? lr : 0);
      const int i = R / a.group, hl = R % a.group;
      qrow[r] = q + int64_t(b) * p.q_batch_stride + int64_t(i) * p.q_seq_stride +
                int64_t(kvh * a.group + hl) * p.q_head_stride;
      int lim = p.causal ? t_b - sq + i + 1 : t_b;
      row_lim[r] = min(lim, n_end);
      row_scale[r] = p.softmax_scale * kLog2e;
    }
#pragma unroll
    for (int s = 0; s < C::kKSteps; ++s) {
      const int qi = s / C::kStepsPerChunk, sub = s % C::kStepsPerChunk;
      const int d0 = (4 * qi + c) * C::kElemsPerChunk + 4 * sub;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        qf[s][r] = ok[r] ? __ldg(reinterpret_cast<const unsigned int*>(qrow[r] + d0)) : 0u;
        qf[s][r + 2] = ok[r] ? __ldg(reinterpret_cast<const unsigned int*>(qrow[r] + d0 + 2)) : 0u;
      }
    }
    if constexpr (kInt8) {
      // Into fp16 with a power-of-two scale per row (exact), folded back into the score.
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float amax = 0.f;
#pragma unroll
        for (int s = 0; s < C::kKSteps; ++s) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float2 f = to_float2<T>(qf[s][r + 2 * h]);
            amax = fmaxf(amax, fmaxf(fabsf(f.x), fabsf(f.y)));
          }
        }
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
        const float e = amax > 0.f ? ceilf(log2f(amax)) - 14.f : 0.f;
        const float inv = exp2f(-e);
        row_scale[r] *= exp2f(e);
#pragma unroll
        for (int s = 0; s < C::kKSteps; ++s) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float2 f = to_float2<T>(qf[s][r + 2 * h]);
            qf[s][r + 2 * h] = mma::Packed<__half>::pack(f.x * inv, f.y * inv);
          }
        }
      }
    }
  }

  float o[kD / 8][4];
#pragma unroll
  for (int j = 0; j < kD / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};

  // ---- Prologue.
  int next_page = 0;
  if constexpr (kPaged) {
    int pg[S];
#pragma unroll
    for (int s = 0; s < S; ++s) pg[s] = fetch_page(s);
#pragma unroll
    for (int s = 0; s < S; ++s) store_page(s, pg[s]);
    __syncthreads();
  }
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < ntiles) load_tile(s);
    mma::cp_async_commit();
  }

  for (int t = 0; t < ntiles; ++t) {
    mma::cp_async_wait<S - 2>();
    __syncthreads();
    if (t + S - 1 < ntiles) load_tile(t + S - 1);
    mma::cp_async_commit();
    if constexpr (kPaged) next_page = fetch_page(t + S);

    const int stage = t % S;
    const uint32_t ks = mma::smem_u32(pipe + stage * C::kStageBytes);
    const uint32_t vs = ks + C::kTileBytes;
    const float* kscale = reinterpret_cast<const float*>(pipe + stage * C::kStageBytes + 2 * C::kTileBytes);
    const int t0 = n_begin + tile_at(t) * TN;

    // Each warp takes kKeysPerWarp consecutive keys of the stage in one
    // pass: S for all of them (kNT independent mma chains), one softmax
    // update, then P V in kKeysPerWarp / 16 k-steps.
    constexpr int kNT = C::kKeysPerWarp / 8;
    const int kb = warp * C::kKeysPerWarp;
    {
      // S = Q K^T over this warp's keys.
      float sc[kNT][4];
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
      for (int qi = 0; qi < C::kChunks / 4; ++qi) {
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const int row = kb + nt * 8 + g;
          const uint4 kv = lds128(ks + row * C::kRowBytes + swizzle<C::kChunks>(row, 4 * qi + c) * 16);
          const uint32_t w[4] = {kv.x, kv.y, kv.z, kv.w};
#pragma unroll
          for (int sub = 0; sub < C::kStepsPerChunk; ++sub) {
            uint32_t b0, b1;
            if constexpr (kInt8) {
              const uint32_t x = w[sub] ^ 0x80808080u;
              b0 = biased_bytes_to_half2(x, 0x5140);
              b1 = biased_bytes_to_half2(x, 0x7362);
            } else {
              b0 = w[2 * sub];
              b1 = w[2 * sub + 1];
            }
            PM::mma(sc[nt], qf[qi * C::kStepsPerChunk + sub], b0, b1);
          }
        }
      }

      // Online softmax (log2 domain); masked keys -> -inf.
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = kb + nt * 8 + 2 * c + e;
          const int pos = t0 + key;
          float ksc = 1.f;
          if constexpr (kInt8) ksc = kscale[key];
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const float v = pos < row_lim[r] ? sc[nt][2 * r + e] * row_scale[r] * ksc : -INFINITY;
            sc[nt][2 * r + e] = v;
            mx[r] = fmaxf(mx[r], v);
          }
        }
      }
      float m_use[2], factor[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const float m_new = fmaxf(m_run[r], mx[r]);
        m_use[r] = m_new == -INFINITY ? 0.f : m_new;
        factor[r] = fast_exp2(m_run[r] - m_use[r]);
        m_run[r] = m_new;
        l_run[r] *= factor[r];
      }
      float pr[kNT][4];
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          pr[nt][e] = fast_exp2(sc[nt][e] - m_use[e / 2]);
          l_run[e / 2] += pr[nt][e];
        }
        if constexpr (kInt8) {
          const float2 vsc = *reinterpret_cast<const float2*>(kscale + TN + kb + nt * 8 + 2 * c);
          pr[nt][0] *= vsc.x;
          pr[nt][1] *= vsc.y;
          pr[nt][2] *= vsc.x;
          pr[nt][3] *= vsc.y;
        }
      }
#pragma unroll
      for (int j = 0; j < kD / 8; ++j) {
        o[j][0] *= factor[0];
        o[j][1] *= factor[0];
        o[j][2] *= factor[1];
        o[j][3] *= factor[1];
      }

#pragma unroll
      for (int ks16 = 0; ks16 < kNT / 2; ++ks16) {
        const uint32_t pa[4] = {PM::pack(pr[2 * ks16][0], pr[2 * ks16][1]), PM::pack(pr[2 * ks16][2], pr[2 * ks16][3]),
                                PM::pack(pr[2 * ks16 + 1][0], pr[2 * ks16 + 1][1]),
                                PM::pack(pr[2 * ks16 + 1][2], pr[2 * ks16 + 1][3])};
        // O += P V: this lane supplies keys {2c, 2c+1, 2c+8, 2c+9} of the
        // k-step at d in [g kD/8, (g+1) kD/8).
        const int k0 = kb + 16 * ks16;
        const int kr[4] = {k0 + 2 * c, k0 + 2 * c + 1, k0 + 2 * c + 8, k0 + 2 * c + 9};
        if constexpr (!kInt8) {
          constexpr int kWords = kD / 16;  // 32-bit words of d per lane per key
          uint32_t vw[4][kWords];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
#pragma unroll
            for (int h = 0; h < kWords / 4; ++h) {
              const int ch = g * (kWords / 4) + h;
              const uint4 v = lds128(vs + kr[i] * C::kRowBytes + swizzle<C::kChunks>(kr[i], ch) * 16);
              vw[i][4 * h] = v.x;
              vw[i][4 * h + 1] = v.y;
              vw[i][4 * h + 2] = v.z;
              vw[i][4 * h + 3] = v.w;
            }
          }
#pragma unroll
          for (int j = 0; j < kD / 8; ++j) {
            const uint32_t sel = (j & 1) ? 0x7632 : 0x5410;
            PM::mma(o[j], pa, prmt(vw[0][j / 2], vw[1][j / 2], sel), prmt(vw[2][j / 2], vw[3][j / 2], sel));
          }
        } else {
          constexpr int kWords = kD / 32;  // 32-bit words (4 int8) of d per lane per key
          uint32_t vw[4][kWords];
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            if constexpr (kWords == 4) {
              const uint4 v = lds128(vs + kr[i] * C::kRowBytes + swizzle<C::kChunks>(kr[i], g) * 16);
              vw[i][0] = v.x;
              vw[i][1] = v.y;
              vw[i][2] = v.z;
              vw[i][3] = v.w;
            } else {
              const uint2 v =
                  lds64(vs + kr[i] * C::kRowBytes + swizzle<C::kChunks>(kr[i], g >> 1) * 16 + (g & 1) * 8);
              vw[i][0] = v.x;
              vw[i][1] = v.y;
            }
          }
#pragma unroll
          for (int w = 0; w < kWords; ++w) {
            uint32_t lo[2], hi[2];
#pragma unroll
            for (int pp = 0; pp < 2; ++pp) {
              const uint32_t x = vw[2 * pp][w] ^ 0x80808080u, y = vw[2 * pp + 1][w] ^ 0x80808080u;
              lo[pp] = prmt(x, y, 0x5140);  // bytes 0, 1 of the two keys, interleaved
              hi[pp] = prmt(x, y, 0x7362);  // bytes 2, 3
            }
            PM::mma(o[4 * w + 0], pa, biased_bytes_to_half2(lo[0], 0x5140), biased_bytes_to_half2(lo[1], 0x5140));
            PM::mma(o[4 * w + 1], pa, biased_bytes_to_half2(lo[0], 0x7362), biased_bytes_to_half2(lo[1], 0x7362));
            PM::mma(o[4 * w + 2], pa, biased_bytes_to_half2(hi[0], 0x5140), biased_bytes_to_half2(hi[1], 0x5140));
            PM::mma(o[4 * w + 3], pa, biased_bytes_to_half2(hi[0], 0x7362), biased_bytes_to_half2(hi[1], 0x7362));
          }
        }
      }
    }
    if constexpr (kPaged) {
      // The slot of tile t was last read when tile t was issued, S - 1 iterations ago.
      if (t + S < ntiles) store_page(t + S, next_page);
    }
  }

  // ---- Merge the warps' states; the pipeline is drained and becomes out_s.
  mma::cp_async_wait<0>();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Lets the combine grid (a programmatic dependent launch) be scheduled
  // while the blocks finish; it still waits for this grid's writes.
  if (a.pdl) asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 1);
    l_run[r] += __shfl_xor_sync(0xffffffffu, l_run[r], 2);
  }
  if (c == 0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      stat_m[warp * kRowsM + g + 8 * r] = m_run[r];
      stat_l[warp * kRowsM + g + 8 * r] = l_run[r];
    }
  }
  __syncthreads();
  float row_m[2], row_l[2];
  auto merged = [&](int lr, float& mm, float& ll) {
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, stat_m[w * kRowsM + lr]);
    const float mu = m == -INFINITY ? 0.f : m;
    float l = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) l += stat_l[w * kRowsM + lr] * exp2f(stat_m[w * kRowsM + lr] - mu);
    mm = mu;
    ll = l;
  };
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    merged(g + 8 * r, row_m[r], row_l[r]);
    const float f = exp2f(m_run[r] - row_m[r]);
    float* dst = out_s + (warp * kRowsM + g + 8 * r) * kD;
#pragma unroll
    for (int j = 0; j < kD / 8; ++j) {
      dst[(2 * c) * (kD / 8) + j] = o[j][2 * r] * f;
      dst[(2 * c + 1) * (kD / 8) + j] = o[j][2 * r + 1] * f;
    }
  }
  __syncthreads();

  const bool split_out = a.splits > 1;
  for (int idx = tid; idx < kRowsM * kD / 4; idx += kThreads) {
    const int lr = idx / (kD / 4), d = idx % (kD / 4) * 4;
    if (lr >= rows_here) break;  // idx grows with lr
    float mm, ll;
    merged(lr, mm, ll);
    float4 acc = *reinterpret_cast<const float4*>(out_s + lr * kD + d);
#pragma unroll
    for (int w = 1; w < kWarps; ++w) {
      const float4 v = *reinterpret_cast<const float4*>(out_s + (w * kRowsM + lr) * kD + d);
      acc.x += v.x;
      acc.y += v.y;
      acc.z += v.z;
      acc.w += v.w;
    }
    const float inv = ll > 0.f ? 1.f / ll : 0.f;
    acc.x *= inv;
    acc.y *= inv;
    acc.z *= inv;
    acc.w *= inv;
    const int R = mt * kRowsM + lr;
    if (split_out) {
      const int64_t wrow = (int64_t(b * p.hkv + kvh) * a.splits + split) * a.rows + R;
      *reinterpret_cast<float4*>(a.ws_out + wrow * kD + d) = acc;
      if (d == 0) a.ws_lse[wrow] = ll > 0.f ? mm + log2f(ll) : -INFINITY;
    } else {
      const int i = R / a.group, hl = R % a.group;
      T* out = static_cast<T*>(p.out) + int64_t(b) * p.out_batch_stride + int64_t(i) * p.out_seq_stride +
               int64_t(kvh * a.group + hl) * p.out_head_stride + d;
      using P = mma::Packed<T>;
      *reinterpret_cast<uint2*>(out) = make_uint2(P::pack(acc.x, acc.y), P::pack(acc.z, acc.w));
    }
  }
}

// Merges the splits' partial outputs: one warp per (sequence, kv head, packed row).
template <typename T, int kD>
__global__ void __launch_bounds__(kThreads) kv_attention_combine(const KernelArgs a) {
  __shared__ float weights[kWarps][kMaxSplits];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Launched programmatically (see the launcher): the main grid's partial
  // outputs are complete and visible only after this wait.
  if (a.pdl) asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  const KvAttentionParams& p = a.p;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t grow = int64_t(blockIdx.x) * kWarps + warp;  // (b * hkv + kvh) * rows + R
  if (grow >= p.b * p.hkv * a.rows) return;
  const int64_t bh = grow / a.rows;
  const int R = int(grow % a.rows);
  const int S = a.splits;
  float lse[kMaxSplits / 32];
  float mx = -INFINITY;
#pragma unroll
  for (int k = 0; k < kMaxSplits / 32; ++k) {
    const int s = lane + 32 * k;
    lse[k] = s < S ? a.ws_lse[(bh * S + s) * a.rows + R] : -INFINITY;
    mx = fmaxf(mx, lse[k]);
  }
#pragma unroll
  for (int o = 16; o >= 1; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < kMaxSplits / 32; ++k) {
    const float w = mx == -INFINITY ? 0.f : exp2f(lse[k] - mx);
    if (lane + 32 * k < S) weights[warp][lane + 32 * k] = w;
    sum += w;
  }
#pragma unroll
  for (int o = 16; o >= 1; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  __syncwarp();
  constexpr int kPer = kD / 32;
  float acc[kPer] = {};
  const float* src = a.ws_out + (bh * S) * a.rows * kD + int64_t(R) * kD + lane * kPer;
  // Unconditional loads (the workspace rows of every split exist), so that
  // several are in flight; an empty split's row was never written and may
  // hold anything, hence the select rather than a multiply by 0.
#pragma unroll 8
  for (int s = 0; s < S; ++s) {
    const float w = weights[warp][s];
    const float* ps = src + int64_t(s) * a.rows * kD;
    const bool use = w > 0.f;
    if constexpr (kPer == 4) {
      const float4 v = *reinterpret_cast<const float4*>(ps);
      acc[0] += use ? w * v.x : 0.f;
      acc[1] += use ? w * v.y : 0.f;
      acc[2] += use ? w * v.z : 0.f;
      acc[3] += use ? w * v.w : 0.f;
    } else {
      const float2 v = *reinterpret_cast<const float2*>(ps);
      acc[0] += use ? w * v.x : 0.f;
      acc[1] += use ? w * v.y : 0.f;
    }
  }
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  const int b = int(bh / p.hkv), kvh = int(bh % p.hkv);
  const int i = R / a.group, hl = R % a.group;
  T* out = static_cast<T*>(p.out) + int64_t(b) * p.out_batch_stride + int64_t(i) * p.out_seq_stride +
           int64_t(kvh * a.group + hl) * p.out_head_stride + lane * kPer;
  using P = mma::Packed<T>;
  if constexpr (kPer == 4) {
    *reinterpret_cast<uint2*>(out) = make_uint2(P::pack(acc[0] * inv, acc[1] * inv), P::pack(acc[2] * inv, acc[3] * inv));
  } else {
    *reinterpret_cast<uint32_t*>(out) = P::pack(acc[0] * inv, acc[1] * inv);
  }
}

}  // namespace slimops::cuda::kv_attn
