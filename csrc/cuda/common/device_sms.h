// Host: the SM count of the current device, for tile choices that depend on
// whether a grid fits one round of resident blocks.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace slimops::cuda {

// SMs of the current device (0 if it cannot be read; the error is cleared so
// that no later launch check trips on it).
inline int64_t current_device_sms() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return sms;
}

}  // namespace slimops::cuda
