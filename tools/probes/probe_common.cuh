// What the standalone CUDA probes (cold_stream.cu, tma_stage_probe.cu)
// share: error checks that stop the probe, and the GPU-side sleep that the
// bench runner's timing puts before each timed call (the host queues the
// call while the GPU spins, so the interval times the kernel, not the host).
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CHECK(x)                                                                     \
  do {                                                                               \
    cudaError_t e = (x);                                                             \
    if (e != cudaSuccess) {                                                          \
      std::fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

__global__ void spin(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}
