// Fused low-rank projection for small M, second design: out = (x V^T) U^T +
// bias in one launch with two kinds of block, so reading V and reading U
// overlap instead of following each other.
//
// Producers (the grid's first blocks) compute t = x V^T [M, r] in float32:
// units of (16 rows of V, kUnitK of K) spread over all their warps, each an
// mma chain (V's rows as the A operand, x as B) whose sums go into t with
// atomics; then each producer counts itself in. Consumers (the rest) each
// own a slice of N: at entry they ask L2 to fetch their rows of U (one
// contiguous span, kept with evict_last), so DRAM streams U while the
// producers stream V; then they wait for every producer, multiply their U
// rows by t on the tensor cores (t carried as two 16-bit parts, hi + lo, to
// keep float32 accuracy), sum the warps' rank shares in shared memory and
// write out. The last consumer zeroes t and the counters behind it, so the
// workspace needs no memset per call.
//
// The cluster kernel this replaces (lowrank_fused.cu) ran its phases one
// after the other, each paying a DRAM round trip: 13.7 us at K = N = 4096,
// r = 512, M = 1 on H100 against torch's two matmuls' 15.2.
//
// The consumers' wait is a spin, so the launcher runs this only when the
// whole grid is resident at once (producers + consumers <= SMs x occupancy).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "lowrank_launcher.h"

namespace slimops::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kUnitK = 128;  // a producer unit: 16 ranks by 128 k, eight mma k-steps
constexpr int kRowGroups = 2;  // 16-row groups of U a consumer's warps share a pass over
constexpr int kRankParts = kWarps / kRowGroups;
constexpr int kMaxDevices = 64;
// Workspace: arrival and departure counters, then t.
constexpr size_t kCounterBytes = 256;

struct RolesArgs {
  LowRankParams p;
  float* t;             // [m, r], zero on entry and on exit
  unsigned* arrived;    // producers done with t
  unsigned* departed;   // consumers done reading t
  int producers;
  int consumers;
  int64_t rows_per_consumer;  // a multiple of 16
};

template <typename T> struct Mma;
template <> struct Mma<__half> {
  __device__ static __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ static __forceinline__ uint32_t pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  __device__ static __forceinline__ float2 unpack(uint32_t w) {
    return __half22float2(*reinterpret_cast<const __half2*>(&w));
  }
  __device__ static __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};
template <> struct Mma<__nv_bfloat16> {
  __device__ static __forceinline__ void run(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  __device__ static __forceinline__ uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  __device__ static __forceinline__ float2 unpack(uint32_t w) {
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xFFFF0000u));
  }
  __device__ static __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

// Two 16-bit values at elems + i, or zero.
template <typename T>
__device__ __forceinline__ uint32_t ld_pair(const T* elems, int64_t i, bool ok) {
  return ok ? __ldg(reinterpret_cast<const unsigned int*>(elems + i)) : 0u;
}

__device__ __forceinline__ unsigned atomic_add_acq_rel(unsigned* addr, unsigned v) {
  unsigned old;
  asm volatile("atom.add.acq_rel.gpu.u32 %0, [%1], %2;\n" : "=r"(old) : "l"(addr), "r"(v) : "memory");
  return old;
}
__device__ __forceinline__ unsigned load_acquire(const unsigned* addr) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(addr) : "memory");
  return v;
}
__device__ __forceinline__ void prefetch_l2_evict_last(const void* addr) {
  asm volatile("prefetch.global.L2::evict_last [%0];\n" ::"l"(addr));
}

// Producer: its units of t^T = V x^T (C fragment: rank j0 + g + 8 (e / 2),
// x row 8 xt + 2 t4 + e % 2), added into t.
template <typename T, int kXTiles>
__device__ void produce(const RolesArgs& a) {
  const LowRankParams& p = a.p;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t4 = lane & 3;
  const T* v = static_cast<const T*>(p.v);
  const T* x = static_cast<const T*>(p.x);
  const int64_t chunks = (p.k + kUnitK - 1) / kUnitK;
  const int64_t units = (p.r + 15) / 16 * chunks;
  const int64_t warps = int64_t(a.producers) * kWarps;
  for (int64_t u = int64_t(blockIdx.x) * kWarps + warp; u < units; u += warps) {
    const int64_t j0 = u / chunks * 16, k0 = u % chunks * kUnitK;
    const bool lo_ok = j0 + g < p.r, hi_ok = j0 + g + 8 < p.r;
    const int64_t lo = (j0 + g) * p.k, hi = lo + 8 * p.k;
    // Every load of the unit is issued before the first mma: interleaved
    // with the mma chain they were the kernel's limit (ncu: 17% of DRAM).
    constexpr int kSteps = kUnitK / 16;
    uint32_t af[kSteps][4], bf[kSteps][kXTiles][2];
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks) {
      // K is a multiple of 8: a step's halves are each all in or all out.
      const int64_t k = k0 + 16 * ks + 2 * t4;
      const bool in0 = k0 + 16 * ks < p.k, in1 = k0 + 16 * ks + 8 < p.k;
      af[ks][0] = ld_pair(v, lo + k, lo_ok && in0);
      af[ks][1] = ld_pair(v, hi + k, hi_ok && in0);
      af[ks][2] = ld_pair(v, lo + k + 8, lo_ok && in1);
      af[ks][3] = ld_pair(v, hi + k + 8, hi_ok && in1);
#pragma unroll
      for (int xt = 0; xt < kXTiles; ++xt) {
        const int64_t row = 8 * xt + g;
        const int64_t xi = row * p.x_row_stride + k;
        bf[ks][xt][0] = ld_pair(x, xi, row < p.m && in0);
        bf[ks][xt][1] = ld_pair(x, xi + 8, row < p.m && in1);
      }
    }
    float d[kXTiles][4] = {};
#pragma unroll
    for (int ks = 0; ks < kSteps; ++ks)
#pragma unroll
      for (int xt = 0; xt < kXTiles; ++xt) Mma<T>::run(d[xt], af[ks], bf[ks][xt][0], bf[ks][xt][1]);
#pragma unroll
    for (int xt = 0; xt < kXTiles; ++xt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = j0 + g + 8 * (e >> 1), row = 8 * xt + 2 * t4 + (e & 1);
        if (j < p.r && row < p.m) atomicAdd(a.t + row * p.r + j, d[xt][e]);
      }
  }
  // The barrier orders the block's atomics before thread 0's release.
  __syncthreads();
  if (threadIdx.x == 0) atomic_add_acq_rel(a.arrived, 1u);
}

// Consumer: out[:, slice] = t U[slice]^T + bias. Warp w takes row group
// w % kRowGroups of each pass and every kRankParts-th 16-rank step.
template <typename T, int kXTiles>
__device__ void consume(const RolesArgs& a, float* red) {
  const LowRankParams& p = a.p;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t4 = lane & 3;
  const int consumer = int(blockIdx.x) - a.producers;
  const int64_t n_begin = consumer * a.rows_per_consumer;
  const int64_t n_end = std::min(n_begin + a.rows_per_consumer, p.n);
  const T* u = static_cast<const T*>(p.u);
  {
    // U is [n, r] row-major: the slice is one contiguous span.
    const auto* span = reinterpret_cast<const uint8_t*>(u + n_begin * p.r);
    const int64_t bytes = (n_end - n_begin) * p.r * int64_t(sizeof(T));
    for (int64_t off = int64_t(threadIdx.x) * 128; off < bytes; off += int64_t(kThreads) * 128)
      prefetch_l2_evict_last(span + off);
  }
  if (threadIdx.x == 0)
    while (load_acquire(a.arrived) < unsigned(a.producers)) __nanosleep(32);
  __syncthreads();  // extends thread 0's acquire to the block

  const int rg = warp % kRowGroups, part = warp / kRowGroups;
  const int64_t steps = (p.r + 15) / 16;
  T* out = static_cast<T*>(p.out);
  for (int64_t pass = n_begin; pass < n_end; pass += 16 * kRowGroups) {
    const int64_t row_lo = pass + 16 * rg + g, row_hi = row_lo + 8;
    const bool lo_ok = row_lo < n_end, hi_ok = row_hi < n_end;
    float acc[kXTiles][4] = {};
    // Batches of kBatch steps: all their loads (U from L2, t) go out before
    // the first mma of the batch.
    constexpr int kBatch = 8;
    for (int64_t s0 = part; s0 < steps; s0 += kRankParts * kBatch) {
      uint32_t af[kBatch][4];
      float2 tv[kBatch][kXTiles][2];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int64_t s = s0 + int64_t(b) * kRankParts;
        const int64_t j = 16 * s + 2 * t4;
        const bool in0 = s < steps, in1 = 16 * s + 8 < p.r;  // r is a multiple of 8
        af[b][0] = ld_pair(u, row_lo * p.r + j, lo_ok && in0);
        af[b][1] = ld_pair(u, row_hi * p.r + j, hi_ok && in0);
        af[b][2] = ld_pair(u, row_lo * p.r + j + 8, lo_ok && in1);
        af[b][3] = ld_pair(u, row_hi * p.r + j + 8, hi_ok && in1);
#pragma unroll
        for (int xt = 0; xt < kXTiles; ++xt) {
          const int64_t m = 8 * xt + g;
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const bool ok = m < p.m && (h == 0 ? in0 : in1);
            tv[b][xt][h] = ok ? __ldcg(reinterpret_cast<const float2*>(a.t + m * p.r + j + 8 * h)) : make_float2(0.f, 0.f);
          }
        }
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b)
#pragma unroll
        for (int xt = 0; xt < kXTiles; ++xt) {
          uint32_t hi[2], lo[2];
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            hi[h] = Mma<T>::pack(tv[b][xt][h].x, tv[b][xt][h].y);
            const float2 rounded = Mma<T>::unpack(hi[h]);
            lo[h] = Mma<T>::pack(tv[b][xt][h].x - rounded.x, tv[b][xt][h].y - rounded.y);
          }
          Mma<T>::run(acc[xt], af[b], hi[0], hi[1]);
          Mma<T>::run(acc[xt], af[b], lo[0], lo[1]);
        }
    }
    // The kRankParts warps of a row group sum their shares; part 0 writes.
    float* mine = red + ((rg * kRankParts + part) * kXTiles * 4) * 32 + lane;
#pragma unroll
    for (int xt = 0; xt < kXTiles; ++xt)
#pragma unroll
      for (int e = 0; e < 4; ++e) mine[(xt * 4 + e) * 32] = acc[xt][e];
    __syncthreads();
    if (part == 0) {
#pragma unroll
      for (int xt = 0; xt < kXTiles; ++xt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float sum = 0.f;
#pragma unroll
          for (int q = 0; q < kRankParts; ++q) sum += red[((rg * kRankParts + q) * kXTiles * 4 + xt * 4 + e) * 32 + lane];
          const int64_t n = pass + 16 * rg + g + 8 * (e >> 1), m = 8 * xt + 2 * t4 + (e & 1);
          if (n < n_end && m < p.m) out[m * p.out_row_stride + n] = Mma<T>::from_float(sum + (p.bias ? p.bias[n] : 0.f));
        }
    }
    __syncthreads();  // red is reused by the next pass
  }
  // The last consumer out leaves t and the counters zero for the next call.
  __shared__ bool last;
  if (threadIdx.x == 0) last = atomic_add_acq_rel(a.departed, 1u) == unsigned(a.consumers) - 1;
  __syncthreads();
  if (!last) return;
  for (int64_t i = threadIdx.x; i < p.m * p.r; i += kThreads) __stcg(a.t + i, 0.f);
  if (threadIdx.x == 0) {
    *a.arrived = 0;
    *a.departed = 0;
  }
}

template <typename T, int kXTiles>
__global__ void __launch_bounds__(kThreads) lowrank_roles_kernel(const RolesArgs a) {
  __shared__ float red[kRowGroups * kRankParts * kXTiles * 4 * 32];
  if (int(blockIdx.x) < a.producers)
    produce<T, kXTiles>(a);
  else
    consume<T, kXTiles>(a, red);
}

template <typename T, int kXTiles>
int64_t resident_blocks() {
  static std::atomic<int64_t> cache[kMaxDevices];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  if (dev < kMaxDevices && cache[dev].load(std::memory_order_relaxed) != 0) return std::max<int64_t>(0, cache[dev]);
  int sms = 0, per_sm = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, lowrank_roles_kernel<T, kXTiles>, kThreads, 0) !=
          cudaSuccess) {
    cudaGetLastError();
    sms = per_sm = 0;
  }
  const int64_t v = int64_t(sms) * per_sm;
  if (dev < kMaxDevices) cache[dev].store(v > 0 ? v : -1, std::memory_order_relaxed);
  return v;
}

// Consumers: 32 rows of U each (two row groups: one pass), more rows each
// where the grid would not fit; producers: as many as the consumers, within
// what is left of the device.
bool make_args(const LowRankParams& p, void* workspace, int64_t slots, RolesArgs& a) {
  a.p = p;
  if (slots < 2) return false;
  int64_t consumers = (p.n + 31) / 32;
  const int64_t max_consumers = slots / 2;
  a.rows_per_consumer = consumers <= max_consumers ? 32 : ((p.n + max_consumers - 1) / max_consumers + 15) / 16 * 16;
  consumers = (p.n + a.rows_per_consumer - 1) / a.rows_per_consumer;
  const int64_t producers = std::min(consumers, slots - consumers);
  if (producers < 1) return false;
  a.producers = int(producers);
  a.consumers = int(consumers);
  auto* ws = static_cast<uint8_t*>(workspace);
  a.arrived = reinterpret_cast<unsigned*>(ws);
  a.departed = reinterpret_cast<unsigned*>(ws + 4);
  a.t = reinterpret_cast<float*>(ws + kCounterBytes);
  return true;
}

template <typename T, int kXTiles>
Status launch(const LowRankParams& p, void* workspace, cudaStream_t stream) {
  RolesArgs a;
  if (!make_args(p, workspace, resident_blocks<T, kXTiles>(), a)) return Status::kUnsupported;
  lowrank_roles_kernel<T, kXTiles><<<a.producers + a.consumers, kThreads, 0, stream>>>(a);
  return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
}

template <typename T>
Status launch_m(const LowRankParams& p, void* workspace, cudaStream_t stream) {
  return p.m <= 8 ? launch<T, 1>(p, workspace, stream) : launch<T, 2>(p, workspace, stream);
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace

bool lowrank_roles_applies(const LowRankParams& p) {
  constexpr int64_t kMaxSize = int64_t(1) << 30;
  if (!(p.dtype == DType::kFloat16 || p.dtype == DType::kBFloat16) || p.m < 1 || p.m > kLowRankFusedMaxM) return false;
  if (p.n < 1 || p.k < 8 || p.r < 8 || p.k % 8 != 0 || p.r % 8 != 0 || p.x_row_stride % 8 != 0) return false;
  if (p.n >= kMaxSize || p.k >= kMaxSize || p.r >= kMaxSize || p.out_row_stride < p.n || p.out == nullptr) return false;
  if (!aligned16(p.x) || !aligned16(p.v) || !aligned16(p.u)) return false;
  RolesArgs a;
  const int64_t slots = p.dtype == DType::kFloat16
                            ? (p.m <= 8 ? resident_blocks<__half, 1>() : resident_blocks<__half, 2>())
                            : (p.m <= 8 ? resident_blocks<__nv_bfloat16, 1>() : resident_blocks<__nv_bfloat16, 2>());
  return make_args(p, nullptr, slots, a);
}

size_t lowrank_roles_workspace_bytes(const LowRankParams& p) {
  return kCounterBytes + size_t(p.m) * size_t(p.r) * sizeof(float);
}

Status lowrank_roles_cuda(const LowRankParams& p, void* workspace, cudaStream_t stream) {
  if (!lowrank_roles_applies(p)) return Status::kUnsupported;
  if (workspace == nullptr || !aligned16(workspace)) return Status::kInvalidArgument;
  return p.dtype == DType::kFloat16 ? launch_m<__half>(p, workspace, stream)
                                    : launch_m<__nv_bfloat16>(p, workspace, stream);
}

}  // namespace slimops::cuda
