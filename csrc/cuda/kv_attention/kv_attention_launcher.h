// Torch-free entry points of the fused CUDA KV-cache attention
// (append + attend, split-KV decode), for KvAttentionParams.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "../../common/kv_attention_params.h"
#include "../../common/status.h"

namespace slimops::cuda {

// Device bytes of workspace kv_attention_cuda needs for p (partial outputs
// and log-sum-exps of the KV splits); 0 when p needs no split. num_sms is the
// device's multiprocessor count, which the split heuristic uses: pass the
// same value to both calls. The workspace needs no initialisation.
size_t kv_attention_workspace_bytes(const KvAttentionParams& p, int num_sms);

// Runs append + attention on stream. dtype float16 or bfloat16; d 64 or 128;
// every pointer 16-byte aligned and every stride except the head-dim one a
// multiple of 8 elements (16 for int8 caches). Returns kUnsupported outside
// that, kCudaError if a launch failed (the error is left for the caller to
// read with cudaGetLastError).
Status kv_attention_cuda(const KvAttentionParams& p, void* workspace, int num_sms, cudaStream_t stream);

}  // namespace slimops::cuda
