// Split-K arrival counters for the CUDA weight-only GEMMs that stay zeroed
// between launches (cuda::SplitKCounters), so that a split-K launch needs no
// memset first: one buffer per device and stream, zeroed once.
#pragma once

#include <c10/core/Device.h>
#include <cuda_runtime_api.h>

#include "../cuda/wo_gemm/wo_gemm_launcher.h"

namespace slimops {

// The counters of `stream` on `device`, or {} while the stream is being
// captured into a CUDA graph: a graph replays its launches later, in any
// order with eager work, so captured launches zero their own workspace.
cuda::SplitKCounters zeroed_split_k_counters(const c10::Device& device, cudaStream_t stream);

}  // namespace slimops
