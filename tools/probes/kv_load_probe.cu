// Probe: how fast can a decode-attention block pattern pull K and V tiles of
// a [B, S_max, Hkv, D] bf16 cache into shared memory, with no math? Three
// loaders with the kernel's grid (block = (split, kv head) x sequence, kv head
// fastest) and pipeline (S stages of 64-key tiles, one __syncthreads per
// tile): cp.async 16 B per thread (the current kernel), TMA 2D tensor-map
// boxes (64 keys x 128 B, 128B swizzle), and 1D bulk copies per 256-byte row.
// Build: nvcc -O3 -std=c++17 -arch=sm_90a tools/probes/kv_load_probe.cu -o /tmp/kv_load_probe
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1); } } while (0)

constexpr int kD = 128, kTile = 64, kThreads = 128;
constexpr int kTileBytes = kTile * kD * 2;  // one of K or V

struct Args {
  const uint8_t* k; const uint8_t* v;
  int64_t batch_stride, seq_stride;  // bytes
  int hkv, L, splits, stages;
};

__device__ __forceinline__ uint32_t su32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }
__device__ __forceinline__ void bar_init(uint64_t* b, unsigned n) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(su32(b)), "r"(n) : "memory"); }
__device__ __forceinline__ void bar_expect(uint64_t* b, unsigned bytes) { asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(su32(b)), "r"(bytes) : "memory"); }
__device__ __forceinline__ void bar_wait(uint64_t* b, unsigned par) {
  asm volatile("{\n.reg .pred p;\nW:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra W;\n}\n" ::"r"(su32(b)), "r"(par) : "memory");
}
__device__ __forceinline__ void tma_2d4(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3, uint64_t* bar) {
  asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];"
               ::"r"(su32(dst)), "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(su32(bar)) : "memory");
}
__device__ __forceinline__ void bulk_1d(void* dst, const void* src, unsigned bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(su32(dst)), "l"(src), "r"(bytes), "r"(su32(bar)) : "memory");
}

// One mbarrier per stage (one arrival each), visible to the copy engine before any copy names it.
__device__ void init_stage_barriers(uint64_t* full, int stages) {
  if (threadIdx.x == 0) {
    for (int s = 0; s < stages; ++s) bar_init(&full[s], 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
}

__device__ int range_of(const Args& a, int split, int& n0) {
  const int tiles = (a.L + kTile - 1) / kTile, per = (tiles + a.splits - 1) / a.splits;
  n0 = split * per;
  return max(0, min(tiles, n0 + per) - n0);
}

__global__ void __launch_bounds__(kThreads) load_cp_async(Args a, float* sink) {
  extern __shared__ __align__(1024) uint8_t sm[];
  const int kvh = blockIdx.x % a.hkv, split = blockIdx.x / a.hkv, b = blockIdx.y;
  int t0; const int nt = range_of(a, split, t0);
  auto issue = [&](int it) {
    uint8_t* st = sm + (it % a.stages) * 2 * kTileBytes;
    for (int i = 0; i < 8; ++i) {
      const int idx = threadIdx.x + i * kThreads, row = idx / 16, ch = idx % 16;
      const int64_t off = b * a.batch_stride + int64_t((t0 + it) * kTile + row) * a.seq_stride + kvh * 256 + ch * 16;
      asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;" ::"r"(su32(st + row * 256 + ch * 16)), "l"(a.k + off) : "memory");
      asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;" ::"r"(su32(st + kTileBytes + row * 256 + ch * 16)), "l"(a.v + off) : "memory");
    }
  };
  for (int s = 0; s < a.stages - 1; ++s) { if (s < nt) issue(s); asm volatile("cp.async.commit_group;"); }
  float acc = 0.f;
  for (int t = 0; t < nt; ++t) {
    if (a.stages == 3) asm volatile("cp.async.wait_group 1;"); else asm volatile("cp.async.wait_group 2;");
    __syncthreads();
    if (t + a.stages - 1 < nt) issue(t + a.stages - 1);
    asm volatile("cp.async.commit_group;");
    acc += reinterpret_cast<const float*>(sm + (t % a.stages) * 2 * kTileBytes)[threadIdx.x];
  }
  if (acc == 12345.f) sink[0] = acc;
}

__global__ void __launch_bounds__(kThreads) load_tma(const __grid_constant__ CUtensorMap km, const __grid_constant__ CUtensorMap vm, Args a, float* sink) {
  extern __shared__ __align__(1024) uint8_t sm[];
  __shared__ uint64_t full[8];
  const int kvh = blockIdx.x % a.hkv, split = blockIdx.x / a.hkv, b = blockIdx.y;
  int t0; const int nt = range_of(a, split, t0);
  init_stage_barriers(full, a.stages);
  auto issue = [&](int it) {
    const int s = it % a.stages;
    uint8_t* st = sm + s * 2 * kTileBytes;
    bar_expect(&full[s], 2 * kTileBytes);
    const int key = (t0 + it) * kTile;
    for (int h = 0; h < 2; ++h) {
      tma_2d4(st + h * (kTileBytes / 2), &km, h * 64, key, kvh, b, &full[s]);
      tma_2d4(st + kTileBytes + h * (kTileBytes / 2), &vm, h * 64, key, kvh, b, &full[s]);
    }
  };
  if (threadIdx.x == 0) for (int s = 0; s < a.stages - 1; ++s) if (s < nt) issue(s);
  float acc = 0.f;
  for (int t = 0; t < nt; ++t) {
    bar_wait(&full[t % a.stages], (t / a.stages) & 1);
    __syncthreads();
    if (threadIdx.x == 0 && t + a.stages - 1 < nt) issue(t + a.stages - 1);
    acc += reinterpret_cast<const float*>(sm + (t % a.stages) * 2 * kTileBytes)[threadIdx.x];
  }
  if (acc == 12345.f) sink[0] = acc;
}

__global__ void __launch_bounds__(kThreads) load_bulk_rows(Args a, float* sink) {
  extern __shared__ __align__(1024) uint8_t sm[];
  __shared__ uint64_t full[8];
  const int kvh = blockIdx.x % a.hkv, split = blockIdx.x / a.hkv, b = blockIdx.y;
  int t0; const int nt = range_of(a, split, t0);
  init_stage_barriers(full, a.stages);
  auto issue = [&](int it) {  // warp 0: lane l copies rows l and l + 32 of K and V
    const int s = it % a.stages;
    uint8_t* st = sm + s * 2 * kTileBytes;
    if (threadIdx.x == 0) bar_expect(&full[s], 2 * kTileBytes);
    __syncwarp();
    for (int r = threadIdx.x; r < kTile; r += 32) {
      const int64_t off = b * a.batch_stride + int64_t((t0 + it) * kTile + r) * a.seq_stride + kvh * 256;
      bulk_1d(st + r * 256, a.k + off, 256, &full[s]);
      bulk_1d(st + kTileBytes + r * 256, a.v + off, 256, &full[s]);
    }
  };
  if (threadIdx.x < 32) for (int s = 0; s < a.stages - 1; ++s) if (s < nt) issue(s);
  float acc = 0.f;
  for (int t = 0; t < nt; ++t) {
    bar_wait(&full[t % a.stages], (t / a.stages) & 1);
    __syncthreads();
    if (threadIdx.x < 32 && t + a.stages - 1 < nt) issue(t + a.stages - 1);
    acc += reinterpret_cast<const float*>(sm + (t % a.stages) * 2 * kTileBytes)[threadIdx.x];
  }
  if (acc == 12345.f) sink[0] = acc;
}

typedef CUresult (*EncodeFn)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                             const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                             CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

CUtensorMap make_map(EncodeFn enc, const void* base, int B, int S, int H, CUtensorMapL2promotion promo) {
  CUtensorMap m;
  cuuint64_t dims[4] = {kD, cuuint64_t(S), cuuint64_t(H), cuuint64_t(B)};
  cuuint64_t strides[3] = {cuuint64_t(H) * kD * 2, kD * 2, cuuint64_t(S) * H * kD * 2};  // bytes of dims 1..3
  // dims order: d, seq, head, batch -> strides of seq, head, batch
  cuuint64_t st[3] = {strides[0], strides[1], strides[2]};
  cuuint32_t box[4] = {64, kTile, 1, 1}, es[4] = {1, 1, 1, 1};
  CUresult r = enc(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void*>(base), dims, st, box, es,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, promo, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) { printf("encode failed %d\n", int(r)); exit(1); }
  return m;
}

int main() {
  EncodeFn enc = nullptr;
  cudaDriverEntryPointQueryResult q;
  CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", reinterpret_cast<void**>(&enc), 12000, cudaEnableDefault, &q));
  int sms; CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const int H = 8;
  uint8_t* flush; const size_t flush_bytes = size_t(256) << 20; CK(cudaMalloc(&flush, flush_bytes));
  float* sink; CK(cudaMalloc(&sink, 4));
  struct Shape { int B, L, Smax; };
  const Shape shapes[] = {{1, 4096, 4096}, {1, 4096, 4112}, {1, 32768, 32768}, {8, 4096, 4096}, {8, 4096, 4112},
                          {8, 16384, 16384}, {8, 16384, 16400}, {32, 8192, 8192}, {32, 8192, 8208}};
  printf("| B | L | S_max | splits | cp.async S3 | TMA S3 | TMA S4 (1 blk) | TMA S6 (1 blk) | bulk rows S3 | TMA S3 no-L2promo |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Shape& sh : shapes) {
    const size_t bytes = size_t(sh.B) * sh.Smax * H * kD * 2;
    uint8_t *k, *v; CK(cudaMalloc(&k, bytes)); CK(cudaMalloc(&v, bytes));
    CK(cudaMemset(k, 0x3c, bytes)); CK(cudaMemset(v, 0x3c, bytes));
    // split heuristic of the kernel: cost = waves * tiles per split, 2 blocks/SM
    const int tiles = (sh.L + 63) / 64; int best = 1; long bc = 1L << 60;
    for (int s = 1; s <= std::min(tiles, 128); ++s) { long blocks = long(sh.B) * H * s, slots = 2L * sms;
      long c = ((blocks + slots - 1) / slots) * ((tiles + s - 1) / s); if (c < bc) { bc = c; best = s; } }
    Args a{k, v, int64_t(sh.Smax) * H * kD * 2, H * kD * 2, H, sh.L, best, 3};
    const CUtensorMap km = make_map(enc, k, sh.B, sh.Smax, H, CU_TENSOR_MAP_L2_PROMOTION_L2_256B);
    const CUtensorMap vm = make_map(enc, v, sh.B, sh.Smax, H, CU_TENSOR_MAP_L2_PROMOTION_L2_256B);
    const CUtensorMap km0 = make_map(enc, k, sh.B, sh.Smax, H, CU_TENSOR_MAP_L2_PROMOTION_NONE);
    const CUtensorMap vm0 = make_map(enc, v, sh.B, sh.Smax, H, CU_TENSOR_MAP_L2_PROMOTION_NONE);
    const double read = 2.0 * sh.B * sh.L * H * kD * 2;
    printf("| %d | %d | %d | %d |", sh.B, sh.L, sh.Smax, best);
    for (int mode = 0; mode < 6; ++mode) {
      Args m = a;
      m.stages = (mode == 2) ? 4 : (mode == 3) ? 6 : 3;
      const int smem = m.stages * 2 * kTileBytes;  // S4, S6: over half the SM, so 1 block/SM
      const dim3 grid(m.splits * H, sh.B);
      auto launch = [&]() {
        if (mode == 0) load_cp_async<<<grid, kThreads, smem>>>(m, sink);
        else if (mode == 4) load_bulk_rows<<<grid, kThreads, smem>>>(m, sink);
        else if (mode == 5) load_tma<<<grid, kThreads, smem>>>(km0, vm0, m, sink);
        else load_tma<<<grid, kThreads, smem>>>(km, vm, m, sink);
      };
      CK(cudaFuncSetAttribute(load_cp_async, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
      CK(cudaFuncSetAttribute(load_tma, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
      CK(cudaFuncSetAttribute(load_bulk_rows, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));
      std::vector<float> ts;
      cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
      for (int rep = 0; rep < 25; ++rep) {
        CK(cudaMemsetAsync(flush, rep & 0xff, flush_bytes));
        CK(cudaEventRecord(e0)); launch(); CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
        float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); if (rep >= 3) ts.push_back(ms);
      }
      CK(cudaGetLastError());
      std::sort(ts.begin(), ts.end());
      const double med = ts[ts.size() / 2] * 1e-3;
      printf(" %.1f us %.2f TB/s |", med * 1e6, read / med / 1e12);
    }
    printf("\n");
    CK(cudaFree(k)); CK(cudaFree(v));
  }
  return 0;
}
