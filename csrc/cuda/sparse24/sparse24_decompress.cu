// Decompression of a CUDA-layout 2:4 weight into the dense W [n, k]
// (sparse24_launcher.h: sparse24_decompress_cuda), for large M, where
// decompress + a dense tensor-core GEMM beats the sparse kernel.
//
// Bound by bytes: it reads 9/16 (bits 16) or ~0.4 (bits 4) bytes and writes
// 2 bytes per dense weight. A block covers one 16-row layout tile row by
// kTilesPerBlock layout tiles along k; each thread builds 16-byte chunks of
// one dense row (8 columns = two groups of 4), so a warp stores 512
// contiguous bytes. A chunk needs, for its two groups (lanes L and L + 1 of
// the tile, see python/slimops/formats/sparse24_cuda.py), two 32-bit value
// words and one metadata byte; the tile's bytes are shared by the block's
// warps through L1 (read-only path), so DRAM sees each byte once.
//
// Numerics: bits 16 copies values bit for bit; bits 4 computes
// (q - zero) * scale in float32 and rounds once to the element type, which
// is exactly what the canonical torch decompress (formats/sparse24.py,
// dense_weight) does.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "../../common/static_switch.h"
#include "sparse24_launcher.h"

namespace slimops::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTilesPerBlock = 8;                               // 512 dense k
constexpr int kChunksPerThread = 16 * kTilesPerBlock * 8 / kThreads;  // 16 rows x 8 chunks a tile

template <typename T>
__device__ __forceinline__ uint16_t bits_of(float v) {
  if constexpr (std::is_same_v<T, __half>)
    return __half_as_ushort(__float2half_rn(v));
  else
    return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// The 4 dense values of one group: kept slots v0, v1 at positions i0, i1
// (nibble i0 | i1 << 2), zeros elsewhere; returned as two packed words.
__device__ __forceinline__ uint2 scatter_group(uint32_t nib, uint32_t v0, uint32_t v1) {
  const uint32_t i0 = nib & 3u, i1 = nib >> 2;
  uint32_t h[4];
#pragma unroll
  for (uint32_t pos = 0; pos < 4; ++pos) h[pos] = pos == i1 ? v1 : (pos == i0 ? v0 : 0u);
  return make_uint2(h[0] | (h[1] << 16), h[2] | (h[3] << 16));
}

template <typename T, int kBits, bool kZeros>
__global__ void __launch_bounds__(kThreads) sparse24_decompress_kernel(const Sparse24Params p, T* __restrict__ dense,
                                                                       int64_t kchunks) {
  const int64_t ktiles = p.k / 64;
  const int64_t rt = int64_t(blockIdx.x) / kchunks;            // layout tile row
  const int64_t kt0 = (int64_t(blockIdx.x) % kchunks) * kTilesPerBlock;
  const uint8_t* __restrict__ vals = static_cast<const uint8_t*>(p.values);
  const uint8_t* __restrict__ meta = p.meta;
  const int64_t groups = kBits == 4 ? p.k / p.group_size : 0;

  uint4 res[kChunksPerThread];
  int64_t dst[kChunksPerThread];
#pragma unroll
  for (int i = 0; i < kChunksPerThread; ++i) {
    const int c = threadIdx.x + kThreads * i;
    const int r = c / (kTilesPerBlock * 8);  // row within the tile row
    const int cc = c % (kTilesPerBlock * 8);
    const int64_t kt = kt0 + cc / 8;
    const int j = cc % 8;  // chunk of the layout tile: step j / 4, groups 2 (j % 4) + {0, 1}
    dst[i] = -1;
    if (kt >= ktiles) continue;
    const int s = j >> 2, tg = 2 * (j & 1), cq = (j >> 1) & 1;  // group G = 4 cq + tg
    const int gr = r & 7, h = r >> 3;
    const int lane = 4 * gr + tg, reg = 2 * cq + h;
    const int64_t tile = rt * ktiles + kt;
    // Byte h * 2 + tg / 2 of metadata word 4 gr + 2 s + cq: groups G, G + 1.
    const uint32_t mb = __ldg(meta + tile * 128 + (4 * gr + 2 * s + cq) * 4 + h * 2 + (tg >> 1));
    uint32_t v[2][2];  // [group][slot] raw 16-bit patterns
    if constexpr (kBits == 16) {
      const uint8_t* const base = vals + tile * 1024 + s * 512 + lane * 16 + reg * 4;
      const uint32_t w0 = __ldg(reinterpret_cast<const uint32_t*>(base));
      const uint32_t w1 = __ldg(reinterpret_cast<const uint32_t*>(base + 16));
      v[0][0] = w0 & 0xFFFFu;
      v[0][1] = w0 >> 16;
      v[1][0] = w1 & 0xFFFFu;
      v[1][1] = w1 >> 16;
    } else {
      const int64_t row = rt * 16 + r;
      const int64_t gi = row * groups + kt * 64 / p.group_size;
      const float sc = __ldg(p.scales + gi);
      const float z = kZeros ? __ldg(p.zeros + gi) : 8.f;
      const uint8_t* const base = vals + tile * 256 + lane * 8 + s * 4;
      const uint32_t q[2] = {__ldg(reinterpret_cast<const uint32_t*>(base)),
                             __ldg(reinterpret_cast<const uint32_t*>(base + 8))};
#pragma unroll
      for (int gg = 0; gg < 2; ++gg)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int idx = 2 * reg + e;  // v[idx]: byte idx % 4, nibble idx / 4
          const uint32_t qv = (q[gg] >> (8 * (idx & 3) + 4 * (idx >> 2))) & 0xFu;
          v[gg][e] = bits_of<T>((float(qv) - z) * sc);
        }
    }
    const uint2 g0 = scatter_group(mb & 0xFu, v[0][0], v[0][1]);
    const uint2 g1 = scatter_group(mb >> 4, v[1][0], v[1][1]);
    res[i] = make_uint4(g0.x, g0.y, g1.x, g1.y);
    dst[i] = (rt * 16 + r) * p.k + kt * 64 + j * 8;
  }
#pragma unroll
  for (int i = 0; i < kChunksPerThread; ++i)
    if (dst[i] >= 0) *reinterpret_cast<uint4*>(dense + dst[i]) = res[i];
}

template <typename T, int kBits, bool kZeros>
Status launch(const Sparse24Params& p, void* dense, cudaStream_t stream) {
  const int64_t kchunks = (p.k / 64 + kTilesPerBlock - 1) / kTilesPerBlock;
  const int64_t blocks = p.n / 16 * kchunks;
  if (blocks > std::numeric_limits<int>::max()) return Status::kUnsupported;
  sparse24_decompress_kernel<T, kBits, kZeros>
      <<<unsigned(blocks), kThreads, 0, stream>>>(p, static_cast<T*>(dense), kchunks);
  return cudaPeekAtLastError() == cudaSuccess ? Status::kOk : Status::kCudaError;
}

}  // namespace

Status sparse24_decompress_cuda(const Sparse24Params& p, void* dense, cudaStream_t stream) {
  if (!sparse24_weight_applies(p)) return Status::kUnsupported;
  if (dense == nullptr || (reinterpret_cast<uintptr_t>(dense) & 15u) != 0) return Status::kInvalidArgument;
  return BOOL_SWITCH(p.dtype == DType::kBFloat16, kBf16, [&] {
    using T = std::conditional_t<kBf16, __nv_bfloat16, __half>;
    if (p.bits == 16) return launch<T, 16, false>(p, dense, stream);
    return BOOL_SWITCH(p.zeros != nullptr, kZeros, [&] { return launch<T, 4, kZeros>(p, dense, stream); });
  });
}

}  // namespace slimops::cuda
