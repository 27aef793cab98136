// Torch-free entry points of the CUDA 2:4 sparse matmul
//   y = x @ W^T (+ bias),  W [n, k] 2:4 sparse in the CUDA layout
// (python/slimops/formats/sparse24_cuda.py: to_cuda_layout), on sparse
// tensor cores (mma.sp, sm_80+). Kernel design: sparse24_kernel.cuh.
//
// What applies (anything else returns Status::kUnsupported and the caller
// takes another path, e.g. decompress + dense GEMM):
//   - p.layout == Sparse24Layout::kCuda;
//   - p.dtype fp16 or bf16 (x, out, and values when bits = 16);
//   - p.bits 16, or 4 with p.scales set, p.group_size a multiple of 64 and
//     k % group_size == 0 (zeros optional, any float);
//   - n a multiple of 16 (n >= 16), k a multiple of 64 (64 <= k < 2^31),
//     m >= 1 (any m up to 65535 * 128; tails are predicated);
//   - x, values and meta 16-byte aligned, x_row_stride a multiple of 8
//     elements and >= k; out_row_stride >= n (any out alignment);
//   - the current device can run the kernel (sm_80 or newer).
// All pointers are device pointers; scales, zeros and bias are float32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "../../common/sparse24_params.h"
#include "../../common/status.h"

namespace slimops::cuda {

bool sparse24_applies(const Sparse24Params& p);

// The part of sparse24_applies about the weight alone (layout, dtype, bits,
// n, k, values / meta / scales): what sparse24_decompress_cuda needs.
bool sparse24_weight_applies(const Sparse24Params& p);

// Device bytes sparse24_gemm_cuda needs as workspace (split-K partials and
// arrival counters; 0: none) for p on a device with num_sms SMs. The
// contents need no initialisation; it must be 16-byte aligned, unused by
// anything else until the launch has finished (stream order), and p and
// num_sms must be the same in both calls.
size_t sparse24_workspace_bytes(const Sparse24Params& p, int num_sms);

// Returns kCudaError if a launch failed (the error is left for the caller's
// cudaGetLastError), kInvalidArgument for a missing workspace or output.
Status sparse24_gemm_cuda(const Sparse24Params& p, void* workspace, int num_sms, cudaStream_t stream);

// The Hopper kernel (sparse24_wgmma.cu: wgmma.mma_async.sp, sm_90a): where
// sparse24_applies holds, bits = 16 and the device is a 9.x one. Same
// workspace contract as sparse24_gemm_cuda (its own size, no initialisation).
bool sparse24_wgmma_applies(const Sparse24Params& p);
size_t sparse24_wgmma_workspace_bytes(const Sparse24Params& p);
Status sparse24_wgmma_cuda(const Sparse24Params& p, void* workspace, cudaStream_t stream);

// Writes the dense weight W [n, k] (row-major, row stride k, element type p.dtype) of p's compressed weight (CUDA layout; bits 16 or 4 with scales/zeros) into dense. Same applicability as sparse24_gemm_cuda except x/out/m are not used.
// dense must be 16-byte aligned (kInvalidArgument otherwise, or if null);
// one bandwidth-bound kernel, no workspace. Bits 4: (q - zero) * scale in
// float32, rounded once to p.dtype, bit for bit the canonical torch
// decompress (formats/sparse24.py, dense_weight).
Status sparse24_decompress_cuda(const Sparse24Params& p, void* dense, cudaStream_t stream);

// From this M on, decompress (sparse24_decompress_cuda) into a temporary +
// a dense cuBLAS GEMM beats sparse24_gemm_cuda: the bindings take that path
// at m >= kSparse24DenseFromM where the Hopper kernel (sparse24_wgmma_cuda)
// does not apply. Measured on H100 (bench/NOTES.md, "2:4
// sparse CUDA kernel (helper)") at M 64/128/256/1024/4096 on 8192x8192,
// 8192x28672, 4096x14336: the sparse kernel still wins at 256 (by 6-23%),
// decompress + cuBLAS wins at 1024 (by 1.65-1.85x) on all three. Linear
// fits put the crossovers at M ~290-360, unmeasured.
constexpr int64_t kSparse24DenseFromM = 1024;

}  // namespace slimops::cuda
