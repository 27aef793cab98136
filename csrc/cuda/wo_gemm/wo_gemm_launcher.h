// Torch-free entry point of the CUDA weight-only GEMM (Marlin's habit: the
// launcher validates what it can, picks a kernel, and reports a status code
// instead of throwing). The strategy per M (today one warp-per-column kernel
// for every M; the tensor-core paths of the weight-only GEMM issue plug in
// here) is chosen inside, so the bindings never change when it does.
#pragma once

#include <cuda_runtime_api.h>

#include "../../common/status.h"
#include "../../common/wo_gemm_params.h"

namespace slimops::cuda {

// x and out are fp16 or bf16 (p.x_dtype); scales and bias float32; all device
// pointers. Returns kCudaError if the launch failed; the error is left for the
// caller to read with cudaGetLastError.
Status wo_gemm_cuda(const WoGemmParams& p, cudaStream_t stream);

}  // namespace slimops::cuda
