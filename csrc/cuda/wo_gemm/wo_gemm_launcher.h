// Torch-free entry points of the CUDA weight-only GEMM (Marlin's habit: the
// launcher validates what it can, picks a kernel, and reports a status code
// instead of throwing).
//
// Strategy per M: the bindings give small and medium M to the tensor-core
// kernel (wo_gemm_mma_*) where it applies; otherwise wo_gemm_cuda_plan() says
// whether the CUDA-core kernels (wo_gemm_cuda) or "dequantise, then a dense
// GEMM" serve a problem best; the dense GEMM itself is cuBLAS, which only
// the bindings can call.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "../../common/status.h"
#include "../../common/wo_gemm_params.h"

namespace slimops::cuda {

// x and out are fp16 or bf16 (p.x_dtype); scales and bias float32; all device
// pointers. Returns kCudaError if the launch failed; the error is left for the
// caller to read with cudaGetLastError.
Status wo_gemm_cuda(const WoGemmParams& p, cudaStream_t stream);

// Split-K arrival counters the caller keeps zeroed: `count` ints that are 0
// when a launch starts and that the launch leaves 0 (the last block of each
// output tile resets its counter). With them a split-K launch needs no memset
// of its workspace's counters first, which is a second launch (~2 us at small
// M). A caller keeps one such buffer per stream (kernels on a stream run in
// order); {} or too few counters: the launcher zeroes its own.
struct SplitKCounters {
  int* zeroed = nullptr;
  size_t count = 0;
};

enum class WoGemmPlan : int {
  kFused = 0,             // wo_gemm_cuda
  kDequantThenDense = 1,  // dequantize_cuda into [n, k] x_dtype, then a dense GEMM
};

// The small-M GEMV (wo_gemv.cu): M <= 8, 16-byte aligned rows, K and groups
// multiples of 16 (int8) or 32 (int4). wo_gemm_cuda uses it where it applies.
bool wo_gemv_applies(const WoGemmParams& p);
Status wo_gemv_cuda(const WoGemmParams& p, cudaStream_t stream);
WoGemmPlan wo_gemm_cuda_plan(const WoGemmParams& p);

// The tensor-core kernel (wo_gemm_mma.cu): mma.sync on the existing weight
// layouts, split-K so that small M fills the GPU. Applies to fp16/bf16 x,
// any M >= 1 and N >= 1, K % group_size == 0, K and group_size multiples of
// 32 (int4) or 16 (int8), x and qweight 16-byte aligned, x_row_stride a
// multiple of 8 elements, on a device that can run it (sm_80+). Outside that
// wo_gemm_mma_cuda returns kUnsupported and the caller takes another path.
bool wo_gemm_mma_applies(const WoGemmParams& p);
// Device bytes wo_gemm_mma_cuda needs as workspace for p (0: none). Its
// contents need no initialisation; it must be 16-byte aligned, must not be
// used by anything else until the launch has finished (stream order), and p
// must be the same in both calls.
size_t wo_gemm_mma_workspace_bytes(const WoGemmParams& p);
Status wo_gemm_mma_cuda(const WoGemmParams& p, void* workspace, cudaStream_t stream, SplitKCounters counters = {});

// The Hopper kernel (wo_gemm_wgmma.cu): wgmma with dequantised weights in
// registers, for medium and large M. Applies on compute capability 9.x to
// fp16/bf16 x, any M and N, K % 64 == 0, K % group_size == 0, group_size a
// multiple of 16, x and qweight 16-byte aligned, x_row_stride a multiple of 8
// elements; elsewhere wo_gemm_wgmma_cuda returns kUnsupported. Workspace and
// counters as for wo_gemm_mma_cuda.
bool wo_gemm_wgmma_applies(const WoGemmParams& p);
size_t wo_gemm_wgmma_workspace_bytes(const WoGemmParams& p);
Status wo_gemm_wgmma_cuda(const WoGemmParams& p, void* workspace, cudaStream_t stream, SplitKCounters counters = {});

// The tensor-core kernel with a low-rank correction in its epilogue
// (lowrank_correction.cuh): out = x dequant(Wq)^T + (x b^T) a^T + bias in one
// kernel. Applies where wo_gemm_mma_applies does, with M <= 16, the rank a
// multiple of 8, a and b 16-byte aligned, and a grid that fits on the device
// at once; elsewhere the caller composes wo_gemm and the correction. The
// workspace is as for wo_gemm_mma_cuda (always needed here).
bool wo_gemm_mma_lowrank_applies(const WoGemmParams& p, const LowRankCorrection& lr);
size_t wo_gemm_mma_lowrank_workspace_bytes(const WoGemmParams& p, const LowRankCorrection& lr);
Status wo_gemm_mma_lowrank_cuda(const WoGemmParams& p, const LowRankCorrection& lr, void* workspace,
                                cudaStream_t stream);

// Writes dequant(qweight) as p.x_dtype [n, k], contiguous, into w_out.
Status dequantize_cuda(const WoGemmParams& p, void* w_out, cudaStream_t stream);

}  // namespace slimops::cuda
