// Fused low-rank projection for small M: out = (x @ V^T) @ U^T + bias in one
// launch, the [M, r] intermediate never leaving the chip.
//
// Work split. A cluster of kCluster blocks owns kGroup consecutive rows of V
// (= columns of U). Phase 1: block `rank` of the cluster computes x V_g^T over
// its 1/kCluster slice of K, so x's bytes are re-read once per cluster rather
// than once per block, and V is streamed in whole 16-byte row pieces. The
// partial sums meet through distributed shared memory (sm_90 clusters), so
// every block of the cluster ends up with t_g = x V_g^T [M, kGroup] in fp32.
// Phase 2: each block of the cluster multiplies t_g by one 1/kCluster slice
// of the rows of U[:, g] (64 contiguous bytes per row: two full sectors) and adds the result
// into an fp32 accumulator with vector atomics. The last cluster to finish a
// slice of N (an arrival counter; nobody waits on anybody) converts that
// slice to x's dtype, adds the bias and zeroes the accumulator behind it, so
// the workspace needs no memset per call.
//
// Where it stands (H100, bf16, K = N = 4096, r = 512, M = 1): 12 us, about
// 0.7 TB/s of DRAM, 13% occupancy, warps waiting on global loads. Latency,
// not bandwidth, bounds it: each block pays a DRAM round trip per phase
// (V, U, atomics, arrival, write-out) with little in flight between them.
// The next step is to request the block's whole V slab and U slice at entry
// (bulk async copies into shared memory, one mbarrier each) so the phases
// overlap; until then the bindings use it only at M = 1, where it beats two
// cuBLAS launches.
//
// Why not one block per chunk of r: with 32 rows per chunk, r = 512 gives 16
// blocks (12% of an H100); with 4 rows per chunk each U row piece is 8 bytes,
// a quarter of a sector, and the atomics grow 8x. The cluster keeps both the
// U pieces and the number of atomics at the 32-row size while filling the GPU.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "../common/ptx.cuh"
#include "lowrank_launcher.h"

namespace slimops::cuda {
namespace {

using ptx::load_once;  // weights are read exactly once: kept out of L1, which x needs

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// 8 is the largest cluster every sm_90 part schedules without opting in.
constexpr int kCluster = 8;
constexpr int kRowsPerWarp = 4;
constexpr int kGroup = kWarps * kRowsPerWarp;  // rows of V per cluster
// Workspace: the arrival counters, padded so the accumulator is 16-byte aligned.
constexpr size_t kCounterBytes = 64;
static_assert(kCluster * sizeof(unsigned) <= kCounterBytes, "counters must fit their slot");

struct FusedArgs {
  LowRankParams p;
  float* acc;          // [m, npad] fp32, zero on entry and on exit
  unsigned* counters;  // [kCluster], zero on entry and on exit
  int64_t npad;        // acc row stride: n rounded up to 4 for float4 atomics
  int64_t nper;        // rows of U (and columns of out) per slice, a multiple of 4
  unsigned groups;     // clusters: ceil(r / kGroup)
};

// The kernel needs clusters (sm_90); the sm_80 pass of a fat binary gets an
// empty body, which lowrank_fused_applies never lets run there.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
#define SLIMOPS_LOWRANK_DEVICE_CODE 1
#endif

#ifdef SLIMOPS_LOWRANK_DEVICE_CODE
template <typename T> struct Convert;
template <> struct Convert<__half> {
  static __device__ __forceinline__ float2 to_float2(uint32_t w) {
    return __half22float2(*reinterpret_cast<const __half2*>(&w));
  }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};
template <> struct Convert<__nv_bfloat16> {
  // bf16 -> f32 is a 16-bit shift: cheaper than the conversion instruction.
  static __device__ __forceinline__ float2 to_float2(uint32_t w) {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xFFFF0000u));
  }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 h = Convert<T>::to_float2(w[i]);
    f[2 * i] = h.x;
    f[2 * i + 1] = h.y;
  }
}

__device__ __forceinline__ float dot8(const float (&a)[8], const float (&b)[8], float acc) {
#pragma unroll
  for (int i = 0; i < 8; ++i) acc = fmaf(a[i], b[i], acc);
  return acc;
}

// Fire-and-forget 16-byte add (sm_90): nothing waits for an old value.
__device__ __forceinline__ void red_add4(float* ptr, float a, float b, float c, float d) {
  asm volatile("red.relaxed.gpu.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(ptr), "f"(a), "f"(b), "f"(c),
               "f"(d)
               : "memory");
}

__device__ __forceinline__ void prefetch_l2(const void* ptr) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(ptr));
}

// Sums the kCount values of v over the lanes that differ in bits kOff, kOff/2,
// ..., kLow, halving the values each lane keeps at every step where it holds
// more than one: log2 steps of kCount/2, kCount/4, ... shuffles instead of
// kCount per step. On return the lane holds the sums of values
// [base, base + remaining) of the original order in v[0..remaining).
template <int kCount, int kOff, int kLow, int kN>
__device__ __forceinline__ void reduce_scatter(float (&v)[kN], int lane, int& base) {
  if constexpr (kOff >= kLow) {
    if constexpr (kCount > 1) {
      constexpr int h = kCount / 2;
      const bool upper = (lane & kOff) != 0;
#pragma unroll
      for (int i = 0; i < h; ++i) {
        const float send = upper ? v[i] : v[i + h];
        const float keep = upper ? v[i + h] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, kOff);
      }
      if (upper) base += h;
      reduce_scatter<h, kOff / 2, kLow>(v, lane, base);
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], kOff);
      reduce_scatter<1, kOff / 2, kLow>(v, lane, base);
    }
  }
}

#endif  // SLIMOPS_LOWRANK_DEVICE_CODE

constexpr int log2_of(int v) { return v <= 1 ? 0 : 1 + log2_of(v / 2); }

// Two blocks per SM (<= 128 registers) at every M: at one, a cluster of 8
// needs 8 idle SMs of one GPC and the 16 clusters of r = 512 may not all fit.
constexpr int kMinBlocks = 2;

template <typename T, int kM>
__global__ void __launch_bounds__(kThreads, kMinBlocks) lowrank_fused_kernel(const FusedArgs a) {
#ifdef SLIMOPS_LOWRANK_DEVICE_CODE
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  const LowRankParams& p = a.p;
  const int rank = int(cluster.block_rank());
  const unsigned group = blockIdx.x / kCluster;
  const int64_t g0 = int64_t(group) * kGroup;
  // The slice of N this block accumulates into, rotated by cluster: clusters
  // run in near lockstep, and without the rotation every cluster's rank b
  // would hit the same addresses with its atomics at the same time.
  const int slice = int((rank + group) % kCluster);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* x = static_cast<const T*>(p.x);
  const T* v = static_cast<const T*>(p.v);
  const T* u = static_cast<const T*>(p.u);

  __shared__ __align__(16) float partial[kM * kGroup];  // this block's K slice of t_g
  __shared__ __align__(16) float t[kM * kGroup];        // t_g over all of K
  __shared__ bool last;

  // Phase 2 needs this block's rows of U only after the cluster has met, but
  // nothing stops DRAM from fetching them into L2 while phase 1 streams V.
  const int64_t n_begin = slice * a.nper;
  const int64_t n_end = n_begin + a.nper < p.n ? n_begin + a.nper : p.n;
  const int64_t slice_cols = p.r - g0 < kGroup ? p.r - g0 : kGroup;  // a multiple of 8
  for (int64_t n = n_begin + threadIdx.x; n < n_end; n += kThreads) {
    const char* row = reinterpret_cast<const char*>(u + n * p.r + g0);
    const int bytes = int(slice_cols) * 2;
    for (int off = 0; off < bytes; off += 32) prefetch_l2(row + off);
    prefetch_l2(row + bytes - 1);  // the piece need not start on a sector
  }

  // ---- Phase 1: partial t_g over chunks [c_begin, c_end) of 8 along K.
  const int64_t chunks = p.k / 8;
  const int64_t per_rank = (chunks + kCluster - 1) / kCluster;
  const int64_t c_begin = rank * per_rank;
  const int64_t c_end = c_begin + per_rank < chunks ? c_begin + per_rank : chunks;
  const T* vrow[kRowsPerWarp];
  bool row_ok[kRowsPerWarp];
#pragma unroll
  for (int j = 0; j < kRowsPerWarp; ++j) {
    const int64_t row = g0 + warp * kRowsPerWarp + j;
    row_ok[j] = row < p.r;
    vrow[j] = v + (row_ok[j] ? row : 0) * p.k;
  }
  float acc[kRowsPerWarp * kM] = {};  // [j][m]
  // Two chunks per row in flight per lane: eight 16-byte loads of V before
  // the first use (one at M = 16, whose 64 accumulators need the registers).
  constexpr int kUnroll = kM >= 16 ? 1 : 2;
  for (int64_t c0 = c_begin + lane; c0 < c_end; c0 += 32 * kUnroll) {
    uint4 w[kUnroll][kRowsPerWarp];
#pragma unroll
    for (int s = 0; s < kUnroll; ++s) {
      const int64_t c = c0 + 32 * s;
#pragma unroll
      for (int j = 0; j < kRowsPerWarp; ++j)
        w[s][j] = (c < c_end && row_ok[j]) ? load_once(vrow[j] + c * 8) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int s = 0; s < kUnroll; ++s) {
      const int64_t c = c0 + 32 * s;
      if (c >= c_end) break;
      float vf[kRowsPerWarp][8];
#pragma unroll
      for (int j = 0; j < kRowsPerWarp; ++j) unpack8<T>(w[s][j], vf[j]);
#pragma unroll
      for (int m = 0; m < kM; ++m) {
        if (m >= p.m) break;  // kM is an upper bound: M = 3 runs the 4-row kernel
        float xf[8];
        unpack8<T>(__ldg(reinterpret_cast<const uint4*>(x + m * p.x_row_stride + c * 8)), xf);
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; ++j) acc[j * kM + m] = dot8(vf[j], xf, acc[j * kM + m]);
      }
    }
  }
  {
    constexpr int kN = kRowsPerWarp * kM;
    constexpr int kHalvings = log2_of(kN) < 5 ? log2_of(kN) : 5;
    constexpr int kLeft = kN >> kHalvings;
    // Lanes that differ only in the bits summed without halving hold copies.
    constexpr int kCopyMask = (32 >> kHalvings) - 1;
    int base = 0;
    reduce_scatter<kN, 16, 1>(acc, lane, base);
    if ((lane & kCopyMask) == 0) {
#pragma unroll
      for (int i = 0; i < kLeft; ++i) {
        const int idx = base + i, j = idx / kM, m = idx % kM;
        partial[m * kGroup + warp * kRowsPerWarp + j] = acc[i];
      }
    }
  }
  // Release this block's partial sums to the cluster, acquire the others'.
  cluster.sync();
  for (int i = threadIdx.x; i < kM * kGroup; i += kThreads) {
    float sum = 0.f;
#pragma unroll
    for (int q = 0; q < kCluster; ++q) sum += cluster.map_shared_rank(partial, q)[i];
    t[i] = sum;
  }
  // No block may leave (and free its shared memory) while another still reads
  // it; this barrier also publishes t to the whole block.
  cluster.sync();

  // ---- Phase 2: acc[:, n] += t_g . U[n, g0:g0+kGroup] for this rank's rows.
  // kPieces lanes share a U row slice, 16 bytes each; each thread takes 4
  // consecutive rows (one float4 of the accumulator).
  constexpr int kPieces = kGroup / 8;
  constexpr int kRowsPerPass = kThreads / kPieces * 4;
  const int piece = threadIdx.x % kPieces;
  const int64_t col = g0 + piece * 8;
  const bool piece_ok = col < p.r;
  // The trip count is the warp's, not the lane's: the shuffles below need
  // every lane; quads past the slice load zeros and add nothing.
  for (int64_t warp_n = n_begin + warp * (kRowsPerPass / kWarps); warp_n < n_end; warp_n += kRowsPerPass) {
    const int64_t n0 = warp_n + (lane / kPieces) * 4;
    uint4 w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
      w[i] = (piece_ok && n0 + i < n_end) ? load_once(u + (n0 + i) * p.r + col) : make_uint4(0, 0, 0, 0);
    float uf[4][8];
#pragma unroll
    for (int i = 0; i < 4; ++i) unpack8<T>(w[i], uf[i]);
    float s[kM * 4] = {};  // [m][i]
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      if (m >= p.m) break;
      const float4 ta = *reinterpret_cast<const float4*>(&t[m * kGroup + piece * 8]);
      const float4 tb = *reinterpret_cast<const float4*>(&t[m * kGroup + piece * 8 + 4]);
      const float tf[8] = {ta.x, ta.y, ta.z, ta.w, tb.x, tb.y, tb.z, tb.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) s[m * 4 + i] = dot8(uf[i], tf, 0.f);
    }
    // Sum over the kPieces lanes of a row quad (adjacent lanes); each lane
    // keeps kM of the 4 kM sums.
    int base = 0;
    reduce_scatter<kM * 4, kPieces / 2, 1>(s, lane, base);
    if constexpr (kM >= 4) {
      // Whole row quads of one m: one 16-byte atomic each (sm_90).
#pragma unroll
      for (int q = 0; q < kM / 4; ++q) {
        const int m = (base + 4 * q) / 4;
        if (m < p.m && n0 < n_end)
          red_add4(a.acc + m * a.npad + n0, s[4 * q], s[4 * q + 1], s[4 * q + 2], s[4 * q + 3]);
      }
    } else {
#pragma unroll
      for (int q = 0; q < kM; ++q) {
        const int m = (base + q) / 4, i = (base + q) % 4;
        if (m < p.m && n0 + i < n_end) atomicAdd(a.acc + m * a.npad + n0 + i, s[q]);
      }
    }
  }

  // ---- Arrival: the last of the `groups` blocks of this slice writes it out.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&a.counters[slice], 1u) == a.groups - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  T* out = static_cast<T*>(p.out);
  for (int64_t n = n_begin + threadIdx.x; n < n_end; n += kThreads) {
    // All rows' loads first: one L2 round trip per column, not one per row.
    float val[kM];
#pragma unroll
    for (int m = 0; m < kM; ++m) val[m] = m < p.m ? __ldcg(a.acc + m * a.npad + n) : 0.f;
    const float b = p.bias ? p.bias[n] : 0.f;
#pragma unroll
    for (int m = 0; m < kM; ++m) {
      if (m >= p.m) break;
      __stcg(a.acc + m * a.npad + n, 0.f);
      out[m * p.out_row_stride + n] = Convert<T>::from_float(val[m] + b);
    }
  }
  if (threadIdx.x == 0) a.counters[slice] = 0;
#endif
}

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

FusedArgs make_args(const LowRankParams& p, void* workspace) {
  FusedArgs a;
  a.p = p;
  a.counters = static_cast<unsigned*>(workspace);
  a.acc = reinterpret_cast<float*>(static_cast<uint8_t*>(workspace) + kCounterBytes);
  a.npad = round_up(p.n, 4);
  a.nper = round_up((a.npad + kCluster - 1) / kCluster, 4);
  a.groups = unsigned((p.r + kGroup - 1) / kGroup);
  return a;
}

template <typename T, int kM>
Status launch(const LowRankParams& p, void* workspace, cudaStream_t stream) {
  const FusedArgs a = make_args(p, workspace);
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(a.groups * kCluster);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = kCluster;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, lowrank_fused_kernel<T, kM>, a) == cudaSuccess ? Status::kOk : Status::kCudaError;
}

template <typename T>
Status launch_m(const LowRankParams& p, void* workspace, cudaStream_t stream) {
  // Few instances (design.md budgets them): a row count runs the next one up.
  if (p.m == 1) return launch<T, 1>(p, workspace, stream);
  if (p.m == 2) return launch<T, 2>(p, workspace, stream);
  if (p.m <= 4) return launch<T, 4>(p, workspace, stream);
  if (p.m <= 8) return launch<T, 8>(p, workspace, stream);
  return launch<T, 16>(p, workspace, stream);
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

bool device_has_clusters() {
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  return major >= 9;
}

}  // namespace

bool lowrank_fused_applies(const LowRankParams& p) {
  constexpr int64_t kMaxSize = int64_t(1) << 30;
  static_assert(kLowRankFusedMaxM == 16, "launch_m instantiates up to 16 rows");
  return (p.dtype == DType::kFloat16 || p.dtype == DType::kBFloat16) && p.m >= 1 && p.m <= kLowRankFusedMaxM &&
         p.n >= 1 && p.k >= 8 && p.r >= 8 && p.k % 8 == 0 && p.r % 8 == 0 && p.x_row_stride % 8 == 0 &&
         p.n < kMaxSize && p.k < kMaxSize && p.r < kMaxSize && p.out_row_stride >= p.n && aligned16(p.x) &&
         aligned16(p.v) && aligned16(p.u) && p.out != nullptr && device_has_clusters();
}

size_t lowrank_fused_workspace_bytes(const LowRankParams& p) {
  return kCounterBytes + size_t(p.m) * size_t(round_up(p.n, 4)) * sizeof(float);
}

Status lowrank_fused_cuda(const LowRankParams& p, void* workspace, cudaStream_t stream) {
  if (!lowrank_fused_applies(p)) return Status::kUnsupported;
  if (workspace == nullptr || !aligned16(workspace)) return Status::kInvalidArgument;
  return p.dtype == DType::kFloat16 ? launch_m<__half>(p, workspace, stream)
                                    : launch_m<__nv_bfloat16>(p, workspace, stream);
}

}  // namespace slimops::cuda
