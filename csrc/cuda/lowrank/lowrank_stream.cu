// Streamed low-rank projection for small M on Hopper:
// out = (x @ V^T) @ U^T + bias in one launch that keeps DRAM busy from its
// first cycle to its last.
//
// Why: at decode sizes the job is reading V and U once (8 MiB at K = N =
// 4096, r = 512: ~3 us at the DRAM rate). The cluster kernel
// (lowrank_fused.cu) and two cuBLAS launches both take ~14 us there because
// each phase waits for its own loads with little in flight (ncu: ~0.6 TB/s).
// Here every block asks the copy engine for all of its bytes at entry.
//
// Work split. One block per SM at most (the grid waits on itself once, so all
// of it must be resident). Phase 1: block b owns rows [b R1, (b + 1) R1) of V
// and computes those columns of t = x V^T over all of K, so every t element
// has exactly one writer (no atomics, no zeroing, bitwise repeatable).
// Phase 2: block b owns rows [b R2, (b + 1) R2) of U and computes those
// columns of out = t U^T over all of r. Between them the grid meets once:
// each block stores its t columns (fp32, workspace), arrives on a counter and
// waits for all blocks; then reads the whole t (M x r floats, from L2).
//
// Data movement. A producer warp copies the rows of V and U the block owns
// into a ring of shared-memory stages with bulk async copies (one per row
// piece, mbarrier-counted), V's chunks first and U's straight after, so U is
// already on chip while the grid waits; chunks that do not fit in the ring
// yet are prefetched into L2 at entry. Eight consumer warps run mma.sync
// m16n8k16 with the M rows of x (or t) as the A operand (rows past M are
// clamped copies whose products are never stored) and the weight rows as B;
// they split each chunk's k steps, and sum across warps through shared memory
// when a row group is done.
//
// Precision: x and the weights enter the mma exactly, sums are fp32. t enters
// phase 2 as two values of x's dtype, hi = round(t) and lo = round(t - hi),
// so its error is ~2^-16 relative rather than the 2^-8 of cuBLAS's rounded
// intermediate. With fp16, |t| must stay below fp16's maximum (as in two
// fp16 GEMMs).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "../common/bulk_copy.cuh"
#include "../wo_gemm/mma_primitives.cuh"
#include "lowrank_launcher.h"

namespace slimops::cuda {
namespace {

constexpr int kConsumerWarps = 8;
constexpr int kConsumers = kConsumerWarps * 32;
constexpr int kThreads = kConsumers + 32;  // and one producer warp
// Rows of V or U per chunk: four n-tiles of 8, whose accumulators (16 floats)
// each consumer keeps across the chunk's k pieces.
constexpr int kMaxGroupRows = 32;
constexpr int kMaxTiles = kMaxGroupRows / 8;
// Every row in shared memory is followed by 16 bytes, so that the 8 rows one
// ldmatrix reads start in 8 different 16-byte bank groups (row lengths are
// multiples of 32 bytes, the padding makes the stride an odd multiple of 16).
constexpr int kRowPad = 16;
constexpr int kStageBytes = 32 * 1024 + kMaxGroupRows * kRowPad;
constexpr int kMaxStages = 8;
constexpr int kScratchBytes = kConsumerWarps * kMaxTiles * 32 * 4 * int(sizeof(float));
constexpr int kBarrierBytes = (2 * kMaxStages + 1) * 8;
// Workspace: two counters (arrivals, departures) in one 64-byte slot, then t.
constexpr size_t kCounterBytes = 64;
// Prefetch into L2 only while the whole weight fits comfortably (50 MB L2).
constexpr int64_t kMaxPrefetchBytes = int64_t(32) << 20;

// One of the two products, as a block sees it: rows [begin, begin + rows) of
// a row-major weight W [*, depth], taken in groups of `group` rows and
// pieces of `kc` columns (one chunk = one stage).
struct Phase {
  const void* w = nullptr;
  int64_t total_rows = 0;
  int rows_per_block = 0;
  int group = 0;
  int depth = 0;
  int kc = 0;
};

struct StreamArgs {
  LowRankParams p;
  Phase phase[2];      // x V^T, then t U^T
  float* t = nullptr;  // [m, r] fp32
  unsigned* counters = nullptr;
  unsigned blocks = 0;
  int stages = 0;
  int in_bytes = 0;    // shared bytes for x [m] rows or t's hi and lo [2m] rows
  int x_stride = 0;    // bytes per row of x in shared memory
  int t_stride = 0;    // bytes per row of t (hi or lo) in shared memory
  bool prefetch = false;
};

struct Chunk {
  int64_t row0;  // first weight row
  int rows;      // <= group
  int col0;      // first column (along depth)
  int cols;      // a multiple of 16
  bool first;    // first piece of its row group: accumulators start at 0
  bool last;     // last piece: the group's sums are complete
};

// The kernel needs bulk copies (sm_90); the sm_80 pass of a fat binary gets
// an empty body, which lowrank_stream_applies never lets run there.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
#define SLIMOPS_LOWRANK_STREAM_DEVICE_CODE 1
#endif

#ifdef SLIMOPS_LOWRANK_STREAM_DEVICE_CODE

// The block's rows of a phase, and how many chunks they make.
struct Share {
  int64_t begin;
  int rows;
  int groups, pieces;
  __device__ int chunks() const { return groups * pieces; }
};

__device__ __forceinline__ Share share_of(const Phase& ph) {
  Share s;
  s.begin = int64_t(blockIdx.x) * ph.rows_per_block;
  const int64_t left = ph.total_rows - s.begin;
  s.rows = left <= 0 ? 0 : (left < ph.rows_per_block ? int(left) : ph.rows_per_block);
  s.groups = (s.rows + ph.group - 1) / ph.group;
  s.pieces = (ph.depth + ph.kc - 1) / ph.kc;
  return s;
}

__device__ __forceinline__ Chunk chunk_of(const Phase& ph, const Share& s, int q) {
  const int g = q / s.pieces, piece = q % s.pieces;
  Chunk c;
  c.row0 = s.begin + int64_t(g) * ph.group;
  const int64_t rows_left = s.begin + s.rows - c.row0;
  c.rows = rows_left < ph.group ? int(rows_left) : ph.group;
  c.col0 = piece * ph.kc;
  c.cols = ph.depth - c.col0 < ph.kc ? ph.depth - c.col0 : ph.kc;
  c.first = piece == 0;
  c.last = piece == s.pieces - 1;
  return c;
}

__device__ __forceinline__ int stage_stride(const Phase& ph) { return ph.kc * 2 + kRowPad; }


// Barrier of the consumer warps only (the producer never joins).
__device__ __forceinline__ void consumers_sync() { asm volatile("bar.sync 1, %0;\n" ::"n"(kConsumers) : "memory"); }

__device__ __forceinline__ unsigned load_acquire(const unsigned* addr) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(addr) : "memory");
  return v;
}

struct Smem {
  uint8_t* in;      // x rows, later t's hi rows then lo rows
  uint8_t* stages;  // the ring
  float* scratch;   // [warp][tile][lane][4]: cross-warp sums
  uint64_t* full;   // [kMaxStages]: a chunk has landed
  // [kMaxStages]: its consumers are done with it. Every consumer thread
  // arrives: an arrival releases only the arriving thread's own reads.
  uint64_t* empty;
  uint64_t* x_ready;
};

__device__ __forceinline__ Smem carve(uint8_t* base, const StreamArgs& a) {
  Smem s;
  s.in = base;
  s.stages = base + a.in_bytes;
  s.scratch = reinterpret_cast<float*>(s.stages + size_t(a.stages) * kStageBytes);
  s.full = reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(s.scratch) + kScratchBytes);
  s.empty = s.full + kMaxStages;
  s.x_ready = s.empty + kMaxStages;
  return s;
}

// ---- Producer: one warp, every lane issuing copies of its own rows.
template <typename T>
__device__ void produce(const StreamArgs& a, const Smem& sm, int lane) {
  const LowRankParams& p = a.p;
  const unsigned x_row_bytes = unsigned(p.k) * 2;
  if (lane == 0) bulk::arrive_expect_tx(sm.x_ready, unsigned(p.m) * x_row_bytes);
  __syncwarp();
  for (int m = lane; m < p.m; m += 32)
    bulk::copy_to_shared(sm.in + m * a.x_stride, static_cast<const T*>(p.x) + m * p.x_row_stride, x_row_bytes,
                         sm.x_ready);

  const Share share[2] = {share_of(a.phase[0]), share_of(a.phase[1])};
  const int total = share[0].chunks() + share[1].chunks();
  struct Piece {
    const Phase* phase;
    Chunk ch;
    const T* src;
  };
  auto piece_of = [&](int c) {
    const int ph = c < share[0].chunks() ? 0 : 1;
    const Phase& phase = a.phase[ph];
    const Chunk ch = chunk_of(phase, share[ph], ph == 0 ? c : c - share[0].chunks());
    return Piece{&phase, ch, static_cast<const T*>(phase.w) + ch.row0 * phase.depth + ch.col0};
  };
  auto copy_chunk = [&](int c) {
    const Piece pc = piece_of(c);
    const int s = c % a.stages;
    const unsigned row_bytes = unsigned(pc.ch.cols) * 2;
    if (lane == 0) bulk::arrive_expect_tx(&sm.full[s], unsigned(pc.ch.rows) * row_bytes);
    __syncwarp();
    uint8_t* dst = sm.stages + size_t(s) * kStageBytes;
    for (int i = lane; i < pc.ch.rows; i += 32)
      bulk::copy_to_shared(dst + i * stage_stride(*pc.phase), pc.src + int64_t(i) * pc.phase->depth, row_bytes,
                           &sm.full[s]);
  };
  // The first `stages` chunks go straight into the ring; the rest only into
  // L2 for now, so that DRAM streams them while the ring drains.
  for (int c = 0; c < total && c < a.stages; ++c) copy_chunk(c);
  if (a.prefetch) {
    for (int c = a.stages; c < total; ++c) {
      const Piece pc = piece_of(c);
      for (int i = lane; i < pc.ch.rows; i += 32)
        bulk::prefetch_l2(pc.src + int64_t(i) * pc.phase->depth, unsigned(pc.ch.cols) * 2);
    }
  }
  // Then into the ring as its stages free up.
  for (int c = a.stages; c < total; ++c) {
    bulk::wait(&sm.empty[c % a.stages], unsigned((c / a.stages - 1) & 1));
    copy_chunk(c);
  }
}

// ---- Consumers.

// acc[j] += in[rows of M, chunk columns] . W[8 rows of tile j, chunk columns]
// over this warp's share of the chunk's k steps. in_lo (phase 2) adds the low
// halves of t.
template <typename T, bool kHiLo>
__device__ __forceinline__ void multiply_chunk(float (&acc)[kMaxTiles][4], const Chunk& ch, uint32_t stage,
                                               int stride, uint32_t in_hi, uint32_t in_lo, int in_stride,
                                               int m_rows, int warp, int lane) {
  const int tiles = (ch.rows + 7) / 8;
  // A: lanes 0-15 address rows 0-15 at k, lanes 16-31 the same rows at k + 8.
  const int a_row = (lane % 16) < m_rows ? lane % 16 : m_rows - 1;
  const uint32_t a_off = uint32_t(a_row * in_stride + (lane / 16) * 16);
  // B: lanes 8i..8i+7 address rows of tile (i / 2) at k + 8 (i % 2).
  const int b_col_bytes = ((lane / 8) % 2) * 16;
  for (int step = warp; step < ch.cols / 16; step += kConsumerWarps) {
    const uint32_t k_bytes = uint32_t(step) * 32;
    uint32_t a[4], alo[4];
    mma::ldmatrix_x4(a, in_hi + a_off + uint32_t(ch.col0) * 2 + k_bytes);
    if constexpr (kHiLo) mma::ldmatrix_x4(alo, in_lo + a_off + uint32_t(ch.col0) * 2 + k_bytes);
#pragma unroll
    for (int j = 0; j < kMaxTiles; j += 2) {
      if (j >= tiles) break;
      int row = j * 8 + (lane / 16) * 8 + lane % 8;
      row = row < ch.rows ? row : ch.rows - 1;
      const uint32_t b_addr = stage + uint32_t(row * stride + b_col_bytes) + k_bytes;
      if (j + 1 < tiles) {
        uint32_t b[4];
        mma::ldmatrix_x4(b, b_addr);
        mma::Packed<T>::mma(acc[j], a, b[0], b[1]);
        mma::Packed<T>::mma(acc[j + 1], a, b[2], b[3]);
        if constexpr (kHiLo) {
          mma::Packed<T>::mma(acc[j], alo, b[0], b[1]);
          mma::Packed<T>::mma(acc[j + 1], alo, b[2], b[3]);
        }
      } else {
        uint32_t b[2];
        ptx::ldmatrix_x2(b, b_addr);
        mma::Packed<T>::mma(acc[j], a, b[0], b[1]);
        if constexpr (kHiLo) mma::Packed<T>::mma(acc[j], alo, b[0], b[1]);
      }
    }
  }
}

// Sums the consumer warps' accumulators of a finished row group and writes
// the group's columns: of t (phase 1, fp32) or of out (phase 2, + bias).
template <typename T, int kPhase>
__device__ void finish_group(const float (&acc)[kMaxTiles][4], const Chunk& ch, const StreamArgs& a,
                             float* scratch, int warp, int lane) {
  const int tiles = (ch.rows + 7) / 8;
#pragma unroll
  for (int j = 0; j < kMaxTiles; ++j)
    if (j < tiles)
      *reinterpret_cast<float4*>(&scratch[((warp * kMaxTiles + j) * 32 + lane) * 4]) =
          make_float4(acc[j][0], acc[j][1], acc[j][2], acc[j][3]);
  consumers_sync();
  const LowRankParams& p = a.p;
  for (int i = int(threadIdx.x); i < tiles * 128; i += kConsumers) {
    const int j = i / 128, l = (i / 4) % 32, e = i % 4;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kConsumerWarps; ++w) sum += scratch[((w * kMaxTiles + j) * 32 + l) * 4 + e];
    // mma accumulator layout: lane l holds rows l/4 (+8 for e >= 2), columns 2 (l % 4) + (e % 2).
    const int m = l / 4 + (e >= 2 ? 8 : 0), n = j * 8 + 2 * (l % 4) + (e & 1);
    if (m >= p.m || n >= ch.rows) continue;
    const int64_t col = ch.row0 + n;
    if constexpr (kPhase == 0) {
      a.t[m * p.r + col] = sum;
    } else {
      const float b = p.bias != nullptr ? p.bias[col] : 0.f;
      static_cast<T*>(p.out)[m * p.out_row_stride + col] = mma::Packed<T>::from_float(sum + b);
    }
  }
  consumers_sync();  // scratch is free again
}

// Every block's t columns are stored; afterwards each block may read all of t.
__device__ void grid_wait(const StreamArgs& a) {
  consumers_sync();
  if (threadIdx.x == 0) {
    __threadfence();  // the block's t stores (ordered before by the barrier) become visible device-wide
    atomicAdd(&a.counters[0], 1u);
    while (load_acquire(&a.counters[0]) < a.blocks) __nanosleep(32);
  }
  consumers_sync();
}

// t [m, r] (fp32, L2) -> shared hi rows [0, m) and lo rows [m, 2m) of x's dtype.
template <typename T>
__device__ void stage_t(const StreamArgs& a, uint8_t* in) {
  const LowRankParams& p = a.p;
  const int quads = int(p.m * p.r / 4);
  for (int i = int(threadIdx.x); i < quads; i += kConsumers) {
    const int m = int(i * 4 / p.r), j = int(i * 4 % p.r);
    const float4 v = __ldcg(reinterpret_cast<const float4*>(a.t + m * p.r + j));
    const float f[4] = {v.x, v.y, v.z, v.w};
    uint32_t hi[2], lo[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const T h0 = mma::Packed<T>::from_float(f[2 * h]), h1 = mma::Packed<T>::from_float(f[2 * h + 1]);
      hi[h] = mma::Packed<T>::pack(mma::Packed<T>::to_float(h0), mma::Packed<T>::to_float(h1));
      lo[h] = mma::Packed<T>::pack(f[2 * h] - mma::Packed<T>::to_float(h0),
                                   f[2 * h + 1] - mma::Packed<T>::to_float(h1));
    }
    *reinterpret_cast<uint2*>(in + m * a.t_stride + j * 2) = make_uint2(hi[0], hi[1]);
    *reinterpret_cast<uint2*>(in + (p.m + m) * a.t_stride + j * 2) = make_uint2(lo[0], lo[1]);
  }
}

template <typename T>
__device__ void consume(const StreamArgs& a, const Smem& sm, int warp, int lane) {
  const LowRankParams& p = a.p;
  const Share share[2] = {share_of(a.phase[0]), share_of(a.phase[1])};
  const uint32_t stages = ptx::smem_u32(sm.stages), in = ptx::smem_u32(sm.in);
  float acc[kMaxTiles][4] = {};
  int c = 0;
  bulk::wait(sm.x_ready, 0);
  for (int q = 0; q < share[0].chunks(); ++q, ++c) {
    const Chunk ch = chunk_of(a.phase[0], share[0], q);
    const int s = c % a.stages;
    bulk::wait(&sm.full[s], unsigned((c / a.stages) & 1));
    if (ch.first)
      for (auto& t : acc) t[0] = t[1] = t[2] = t[3] = 0.f;
    multiply_chunk<T, false>(acc, ch, stages + uint32_t(s) * kStageBytes, stage_stride(a.phase[0]), in, in,
                             a.x_stride, int(p.m), warp, lane);
    bulk::arrive(&sm.empty[s]);
    if (ch.last) finish_group<T, 0>(acc, ch, a, sm.scratch, warp, lane);
  }

  grid_wait(a);
  if (share[1].chunks() > 0) stage_t<T>(a, sm.in);
  consumers_sync();
  // The last block to get here has seen every block leave the wait: reset the
  // counters for the next launch on this stream.
  if (threadIdx.x == 0 && atomicAdd(&a.counters[1], 1u) == a.blocks - 1) {
    a.counters[0] = 0;
    a.counters[1] = 0;
  }

  const uint32_t t_lo = in + uint32_t(p.m * a.t_stride);
  for (int q = 0; q < share[1].chunks(); ++q, ++c) {
    const Chunk ch = chunk_of(a.phase[1], share[1], q);
    const int s = c % a.stages;
    bulk::wait(&sm.full[s], unsigned((c / a.stages) & 1));
    if (ch.first)
      for (auto& t : acc) t[0] = t[1] = t[2] = t[3] = 0.f;
    multiply_chunk<T, true>(acc, ch, stages + uint32_t(s) * kStageBytes, stage_stride(a.phase[1]), in, t_lo,
                            a.t_stride, int(p.m), warp, lane);
    bulk::arrive(&sm.empty[s]);
    if (ch.last) finish_group<T, 1>(acc, ch, a, sm.scratch, warp, lane);
  }
}

#endif  // SLIMOPS_LOWRANK_STREAM_DEVICE_CODE

template <typename T>
__global__ void __launch_bounds__(kThreads, 1) lowrank_stream_kernel(const StreamArgs a) {
#ifdef SLIMOPS_LOWRANK_STREAM_DEVICE_CODE
  extern __shared__ __align__(128) uint8_t smem[];
  const Smem sm = carve(smem, a);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if (threadIdx.x == 0) {
    for (int s = 0; s < a.stages; ++s) {
      bulk::barrier_init(&sm.full[s], 1);
      bulk::barrier_init(&sm.empty[s], kConsumers);
    }
    bulk::barrier_init(sm.x_ready, 1);
    bulk::fence_barrier_init();
  }
  __syncthreads();
  if (warp == kConsumerWarps)
    produce<T>(a, sm, lane);
  else
    consume<T>(a, sm, warp, lane);
#endif
}

// ---- Host side.

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t v, int64_t to) { return ceil_div(v, to) * to; }

constexpr int kMaxDevices = 64;

// SMs and the shared memory one block may opt into, per device (0 if the
// device has no bulk copies); the opt-in for both kernels is made here.
struct Capacity {
  int sms = 0, smem = 0;
};
Capacity capacity() {
  static std::atomic<int64_t> cache[kMaxDevices];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  if (dev < kMaxDevices) {
    const int64_t v = cache[dev].load(std::memory_order_relaxed);
    if (v != 0) return v > 0 ? Capacity{int(v >> 32), int(v & 0xFFFFFFFF)} : Capacity{};
  }
  int major = 0, sms = 0, smem = 0;
  bool ok = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess &&
            major >= 9;
  ok = ok &&
       cudaFuncSetAttribute(lowrank_stream_kernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) ==
           cudaSuccess &&
       cudaFuncSetAttribute(lowrank_stream_kernel<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            smem) == cudaSuccess;
  if (!ok) cudaGetLastError();  // leave no error behind for the fallback path
  const Capacity c = ok ? Capacity{sms, smem} : Capacity{};
  if (dev < kMaxDevices) cache[dev].store(ok ? (int64_t(sms) << 32) | smem : -1, std::memory_order_relaxed);
  return c;
}

// Rows per block (a multiple of 8 above 8, so n-tiles stay whole), rows per
// chunk and columns per chunk for a weight of `rows` x `depth`.
Phase phase_for(const void* w, int64_t rows, int64_t depth, int64_t blocks) {
  Phase ph;
  ph.w = w;
  ph.total_rows = rows;
  int64_t per = ceil_div(rows, blocks);
  if (per > 8) per = round_up(per, 8);
  ph.rows_per_block = int(per);
  ph.group = int(per < kMaxGroupRows ? per : kMaxGroupRows);
  const int64_t fit = (kStageBytes / ph.group - kRowPad) / 2 / 16 * 16;  // columns that fit a stage
  ph.depth = int(depth);
  ph.kc = int(depth < fit ? depth : fit);
  return ph;
}

// Fills a for p; false if the kernel cannot take it here.
bool make_args(const LowRankParams& p, StreamArgs& a) {
  const Capacity cap = capacity();
  if (cap.sms == 0) return false;
  a.p = p;
  a.phase[0] = phase_for(p.v, p.r, p.k, cap.sms);
  a.phase[1] = phase_for(p.u, p.n, p.r, cap.sms);
  const int64_t blocks = std::max(ceil_div(p.r, a.phase[0].rows_per_block), ceil_div(p.n, a.phase[1].rows_per_block));
  a.blocks = unsigned(blocks);
  a.x_stride = int(p.k * 2 + kRowPad);
  a.t_stride = int(p.r * 2 + kRowPad);
  a.in_bytes = int(round_up(std::max(p.m * a.x_stride, 2 * p.m * a.t_stride), 128));
  const int64_t left = int64_t(cap.smem) - a.in_bytes - kScratchBytes - kBarrierBytes;
  a.stages = int(std::min<int64_t>(kMaxStages, left / kStageBytes));
  a.prefetch = p.r * (p.k + p.n) * 2 <= kMaxPrefetchBytes;
  return blocks <= cap.sms && a.stages >= 2;
}

size_t smem_bytes(const StreamArgs& a) {
  return size_t(a.in_bytes) + size_t(a.stages) * kStageBytes + kScratchBytes + kBarrierBytes;
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace

bool lowrank_stream_applies(const LowRankParams& p) {
  constexpr int64_t kMaxSize = int64_t(1) << 30;
  StreamArgs a;
  return (p.dtype == DType::kFloat16 || p.dtype == DType::kBFloat16) && p.m >= 1 && p.m <= kLowRankStreamMaxM &&
         p.n >= 1 && p.k >= 16 && p.r >= 16 && p.k % 16 == 0 && p.r % 16 == 0 && p.x_row_stride % 8 == 0 &&
         p.n < kMaxSize && p.k < kMaxSize && p.r < kMaxSize && p.out_row_stride >= p.n && aligned16(p.x) &&
         aligned16(p.v) && aligned16(p.u) && p.out != nullptr && make_args(p, a);
}

size_t lowrank_stream_workspace_bytes(const LowRankParams& p) {
  return kCounterBytes + size_t(p.m) * size_t(p.r) * sizeof(float);
}

Status lowrank_stream_cuda(const LowRankParams& p, void* workspace, cudaStream_t stream) {
  if (!lowrank_stream_applies(p)) return Status::kUnsupported;
  if (workspace == nullptr || !aligned16(workspace)) return Status::kInvalidArgument;
  StreamArgs a;
  make_args(p, a);
  a.counters = static_cast<unsigned*>(workspace);
  a.t = reinterpret_cast<float*>(static_cast<uint8_t*>(workspace) + kCounterBytes);
  const size_t smem = smem_bytes(a);
  if (p.dtype == DType::kFloat16)
    lowrank_stream_kernel<__half><<<a.blocks, kThreads, smem, stream>>>(a);
  else
    lowrank_stream_kernel<__nv_bfloat16><<<a.blocks, kThreads, smem, stream>>>(a);
  return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
}

}  // namespace slimops::cuda
