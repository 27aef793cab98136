// How fast can any kernel read N bytes that are not in L2, timed the way the
// bench runner times (events around one launch, after a flush and a GPU-side
// sleep, median of many)? The intercept of time against bytes is the part of
// every small-M row no kernel design can remove; torch.sum (tools/flush_probe.py)
// is a reduction with few loads in flight, so it overstates it.
//
//   nvcc -O3 -gencode arch=compute_90a,code=sm_90a tools/probes/cold_stream.cu -o /tmp/cold_stream
//   /tmp/cold_stream [reps] [any second argument: also the block-slice reader]
//
// Readers: 16-byte non-coherent loads, 8 in flight per thread, grid-strided
// (every round of the grid reads one contiguous span), optionally each block
// reading one contiguous slice; then a weight GEMV's access shape
// (read_row_segments: a few contiguous bytes of each of many rows per step),
// plain and with each block starting its walk at its own step.
// Flushes: write 256 MiB (the runner's zero_: L2 left dirty), read it (L2
// left clean), none (hot, for reference). Results: bench/results/cold_stream_h100.md.
#include <cuda_runtime.h>

#include <cstdint>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../csrc/cuda/common/ptx.cuh"
#include "probe_common.cuh"

using slimops::cuda::ptx::load_once;

constexpr int kUnroll = 8;

// Every round of the whole grid reads one contiguous span.
__global__ void read_grid_strided(const uint4* p, size_t n, unsigned* sink) {
  unsigned acc = 0;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride * kUnroll) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      size_t j = i + u * stride;
      v[u] = j < n ? load_once(p + j) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;  // keeps the loads alive
}

// Each block reads its own contiguous slice, as a GEMV's row blocks do.
__global__ void read_block_slices(const uint4* p, size_t n, unsigned* sink) {
  const size_t per_block = (n + gridDim.x - 1) / gridDim.x;
  const size_t begin = blockIdx.x * per_block;
  const size_t end = begin + per_block < n ? begin + per_block : n;
  unsigned acc = 0;
  for (size_t i = begin + threadIdx.x; i < end; i += size_t(blockDim.x) * kUnroll) {
    uint4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      size_t j = i + size_t(u) * blockDim.x;
      v[u] = j < end ? load_once(p + j) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

// A weight GEMV's access shape: block (b, s) reads rows [b R, b R + R) of a
// [rows x row_bytes] matrix over its share s of each row, kSeg contiguous
// bytes of each row per step, kU steps in flight.
template <int kSeg, int kR, int kU, int kThreads, bool kRotate = false>
__global__ void __launch_bounds__(kThreads) read_row_segments(const uint8_t* w, long long row_bytes, unsigned* sink) {
  constexpr int kLoadsPerRow = kSeg / 16;
  constexpr int kPerThread = kR * kLoadsPerRow / kThreads;
  static_assert(kPerThread >= 1 && kR * kLoadsPerRow % kThreads == 0, "whole loads");
  const long long share = row_bytes / gridDim.y;
  const uint8_t* base = w + (long long)(blockIdx.x) * kR * row_bytes + blockIdx.y * share;
  unsigned acc = 0;
  // kRotate: each block starts at its own step and wraps around, so the
  // blocks' concurrent reads are not all at one offset of rows 4 KiB apart.
  const long long steps = share / (kSeg * kU);
  const long long first = kRotate ? (blockIdx.x * 7 + blockIdx.y * 3) % steps : 0;
  for (long long s = 0; s < steps; ++s) {
    const long long k0 = ((s + first) % steps) * kSeg * kU;
    uint4 v[kU][kPerThread];
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int l = 0; l < kPerThread; ++l) {
        const int idx = l * kThreads + threadIdx.x;
        const int r = idx / kLoadsPerRow, c = idx % kLoadsPerRow;
        const long long off = k0 + u * kSeg + c * 16;
        v[u][l] = off < share ? load_once(base + r * row_bytes + off)
                              : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int l = 0; l < kPerThread; ++l) acc ^= v[u][l].x ^ v[u][l].y ^ v[u][l].z ^ v[u][l].w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

__global__ void tiny(float* x) { x[threadIdx.x] *= 1.0f; }

enum Flush { kDirty, kClean, kHot };

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 40;
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  const size_t flush_bytes = size_t(256) << 20;
  const size_t max_bytes = size_t(480) << 20;
  void *flush_buf, *data;
  unsigned* sink;
  float* tiny_buf;
  CHECK(cudaMalloc(&flush_buf, flush_bytes));
  CHECK(cudaMalloc(&data, max_bytes));
  CHECK(cudaMalloc(&sink, 4));
  CHECK(cudaMalloc(&tiny_buf, 128));
  CHECK(cudaMemset(data, 0x5a, max_bytes));
  CHECK(cudaMemset(tiny_buf, 0, 128));
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));

  auto flush = [&](Flush f) {
    if (f == kDirty) CHECK(cudaMemsetAsync(flush_buf, 0, flush_bytes));
    if (f == kClean) read_grid_strided<<<sms * 4, 512>>>((const uint4*)flush_buf, flush_bytes / 16, sink);
  };
  // Median of `launch` between two events, after a flush and a GPU sleep.
  auto time_launch = [&](Flush f, auto&& launch) {
    std::vector<float> t;
    for (int r = 0; r < reps + 5; ++r) {
      flush(f);
      spin<<<1, 1>>>(200000);
      CHECK(cudaEventRecord(start));
      launch();
      CHECK(cudaEventRecord(stop));
      CHECK(cudaEventSynchronize(stop));
      float ms;
      CHECK(cudaEventElapsedTime(&ms, start, stop));
      if (r >= 5) t.push_back(ms * 1e3f);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  // kind: 0 empty window, 1 tiny kernel, 2 grid-strided read, 3 block slices.
  auto median_us = [&](int kind, size_t bytes, int blocks_per_sm, Flush f) {
    const size_t n = bytes / 16;
    return time_launch(f, [&] {
      if (kind == 1) tiny<<<1, 32>>>(tiny_buf);
      if (kind == 2) read_grid_strided<<<sms * blocks_per_sm, 512>>>((const uint4*)data, n, sink);
      if (kind == 3) read_block_slices<<<sms * blocks_per_sm, 512>>>((const uint4*)data, n, sink);
    });
  };
  CHECK(cudaGetLastError());
  std::printf("# %s, %d SMs; median of %d, us; reads by 512-thread blocks, 8 x 16 B in flight per thread\n",
              prop.name, sms, reps);
  std::printf("| call | dirty L2 (zero_ flush) | clean L2 (read flush) | hot |\n|---|---|---|---|\n");
  std::printf("| empty event pair | %.1f | %.1f | %.1f |\n", median_us(0, 0, 1, kDirty), median_us(0, 0, 1, kClean),
              median_us(0, 0, 1, kHot));
  std::printf("| tiny kernel | %.1f | %.1f | %.1f |\n", median_us(1, 0, 1, kDirty), median_us(1, 0, 1, kClean),
              median_us(1, 0, 1, kHot));
  const size_t mib[] = {1, 4, 8, 16, 34, 64, 128, 235, 470};
  for (int kind = 2; kind <= (argc > 2 ? 3 : 2); ++kind) {
    for (int bps : {4}) {
      for (size_t m : mib) {
        const size_t bytes = m << 20;
        float d = median_us(kind, bytes, bps, kDirty), c = median_us(kind, bytes, bps, kClean),
              h = median_us(kind, bytes, bps, kHot);
        std::printf("| %s x%d/SM %zu MiB | %.1f (%.2f TB/s) | %.1f (%.2f TB/s) | %.1f |\n",
                    kind == 2 ? "grid-strided" : "block slices", bps, m, d, bytes / d * 1e-6, c,
                    bytes / c * 1e-6, h);
      }
    }
  }

  // The weight shapes of issue 3 at int4: 8192 x 8192 (4 KiB rows, 8192 rows:
  // 32 MiB) and 8192 x 28672 (112 MiB); the k split brings blocks to ~224-256.
  std::printf("\n| row segments (seg B x rows x steps in flight, threads) | rows | splits | dirty | clean |\n|---|---|---|---|---|\n");
  auto rows_case = [&](const char* name, auto kernel, int r, int threads) {
    for (int n_rows : {8192, 28672}) {
      const long long row_bytes = 4096;
      const int blocks_x = n_rows / r;
      const int splits = std::max(1, 256 / blocks_x);
      auto time_one = [&](Flush f) {
        return time_launch(f, [&] { kernel<<<dim3(blocks_x, splits), threads>>>((const uint8_t*)data, row_bytes, sink); });
      };
      const double bytes = double(n_rows) * row_bytes;
      const float d = time_one(kDirty), c = time_one(kClean);
      std::printf("| %s | %d | %d | %.1f (%.2f TB/s) | %.1f (%.2f TB/s) |\n", name, n_rows, splits, d,
                  bytes / d * 1e-6, c, bytes / c * 1e-6);
    }
  };
  rows_case("64 x 128 x 4, 128", read_row_segments<64, 128, 4, 128>, 128, 128);
  rows_case("64 x 128 x 8, 256", read_row_segments<64, 128, 8, 256>, 128, 256);
  rows_case("128 x 64 x 4, 128", read_row_segments<128, 64, 4, 128>, 64, 128);
  rows_case("256 x 32 x 4, 128", read_row_segments<256, 32, 4, 128>, 32, 128);
  rows_case("256 x 32 x 8, 128", read_row_segments<256, 32, 8, 128>, 32, 128);
  rows_case("512 x 16 x 4, 128", read_row_segments<512, 16, 4, 128>, 16, 128);
  rows_case("1024 x 8 x 4, 128", read_row_segments<1024, 8, 4, 128>, 8, 128);
  rows_case("rotated 64 x 128 x 4, 128", read_row_segments<64, 128, 4, 128, true>, 128, 128);
  rows_case("rotated 64 x 128 x 8, 256", read_row_segments<64, 128, 8, 256, true>, 128, 256);
  rows_case("rotated 256 x 32 x 4, 128", read_row_segments<256, 32, 4, 128, true>, 32, 128);
  rows_case("rotated 1024 x 8 x 4, 128", read_row_segments<1024, 8, 4, 128, true>, 8, 128);
  CHECK(cudaDeviceSynchronize());
  return 0;
}
