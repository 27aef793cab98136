// Torch-free entry points of the fused CUDA low-rank projection
// out = (x @ V^T) @ U^T + bias for small M (lowrank_fused.cu).
//
// Large M is a pair of dense GEMMs, which cuBLAS does best and only the
// bindings can call; the fused kernel is for decode-sized M, where the job is
// streaming V and U once and two library launches cost more than the bytes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "../../common/lowrank_params.h"
#include "../../common/status.h"

namespace slimops::cuda {

// Rows of x the fused kernel takes at most: its accumulators live in
// registers, one set per row of x. (Where it pays is the bindings' choice:
// lowrank_cuda.cpp has the measurements.)
constexpr int kLowRankFusedMaxM = 16;

// The fused kernel applies to fp16/bf16, 1 <= m <= kLowRankFusedMaxM, any
// n >= 1, k and r multiples of 8, x_row_stride a multiple of 8 elements, x, V
// and U 16-byte aligned, sizes below 2^31, on the current device if it has
// thread-block clusters (sm_90+). Outside that lowrank_fused_cuda returns
// kUnsupported and the caller takes another path.
bool lowrank_fused_applies(const LowRankParams& p);

// Device bytes of workspace lowrank_fused_cuda needs for p: an fp32
// accumulator of out and arrival counters. It must be 16-byte aligned and all
// zero before its first use; every launch that completes leaves it all zero
// again, so a caller may keep one per stream and reuse it (launches on one
// stream are ordered; two streams must not share one).
size_t lowrank_fused_workspace_bytes(const LowRankParams& p);

// Returns kCudaError if the launch failed; the error is left for the caller
// to read with cudaGetLastError.
Status lowrank_fused_cuda(const LowRankParams& p, void* workspace, cudaStream_t stream);

}  // namespace slimops::cuda
