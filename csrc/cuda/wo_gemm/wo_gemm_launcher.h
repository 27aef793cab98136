// Torch-free entry points of the CUDA weight-only GEMM (Marlin's habit: the
// launcher validates what it can, picks a kernel, and reports a status code
// instead of throwing).
//
// Strategy per M: wo_gemm_cuda_plan() says whether the fused kernel
// (wo_gemm_cuda) or "dequantise, then a dense GEMM" serves a problem best;
// the dense GEMM itself is cuBLAS, which only the bindings can call. The
// tensor-core kernels of the weight-only GEMM issue plug in behind the same
// two entry points.
#pragma once

#include <cuda_runtime_api.h>

#include "../../common/status.h"
#include "../../common/wo_gemm_params.h"

namespace slimops::cuda {

// x and out are fp16 or bf16 (p.x_dtype); scales and bias float32; all device
// pointers. Returns kCudaError if the launch failed; the error is left for the
// caller to read with cudaGetLastError.
Status wo_gemm_cuda(const WoGemmParams& p, cudaStream_t stream);

enum class WoGemmPlan : int {
  kFused = 0,             // wo_gemm_cuda
  kDequantThenDense = 1,  // dequantize_cuda into [n, k] x_dtype, then a dense GEMM
};

// The small-M GEMV (wo_gemv.cu): M <= 8, 16-byte aligned rows, K and groups
// multiples of 16 (int8) or 32 (int4). wo_gemm_cuda uses it where it applies.
bool wo_gemv_applies(const WoGemmParams& p);
Status wo_gemv_cuda(const WoGemmParams& p, cudaStream_t stream);
WoGemmPlan wo_gemm_cuda_plan(const WoGemmParams& p);

// Writes dequant(qweight) as p.x_dtype [n, k], contiguous, into w_out.
Status dequantize_cuda(const WoGemmParams& p, void* w_out, cudaStream_t stream);

}  // namespace slimops::cuda
