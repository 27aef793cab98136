// CUDA implementation of slimops::kv_attention: checks, device guard and
// stream, a workspace for the split-KV partials, then the torch-free
// launcher (csrc/cuda/kv_attention). Built only when torch has CUDA.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <string>

#include "../cuda/kv_attention/kv_attention_launcher.h"
#include "kv_attention_args.h"

namespace slimops {
namespace {

constexpr const char* kOp = "slimops.kv_attention (CUDA)";

// q, k and v are read, never written: a layout the kernel cannot take (a
// stride or base that breaks its 16-byte loads) is copied, which costs
// O(B Sq H D) against the O(B L Hkv D) cache read.
at::Tensor vector_friendly(const at::Tensor& t) {
  bool ok = reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  for (int64_t i = 0; i + 1 < t.dim(); ++i) ok = ok && (t.size(i) <= 1 || t.stride(i) % 8 == 0);
  return ok ? t : t.contiguous();
}

at::Tensor kv_attention_cuda(const at::Tensor& q_in, at::Tensor& k_cache, at::Tensor& v_cache,
                             const at::Tensor& cache_seqlens, const c10::optional<at::Tensor>& k_in,
                             const c10::optional<at::Tensor>& v_in, c10::optional<double> softmax_scale, bool causal,
                             const c10::optional<at::Tensor>& block_table, c10::optional<at::Tensor> k_scale,
                             c10::optional<at::Tensor> v_scale) {
  TORCH_CHECK(q_in.is_cuda(), kOp, ": q must be a CUDA tensor, got ", q_in.device());
  TORCH_CHECK(q_in.scalar_type() == at::kHalf || q_in.scalar_type() == at::kBFloat16, kOp,
              ": q must be float16 or bfloat16 on CUDA, got ", q_in.scalar_type());
  const at::Tensor q = vector_friendly(q_in);
  c10::optional<at::Tensor> k = k_in, v = v_in;
  if (k.has_value() && v.has_value()) {
    k = vector_friendly(*k);
    v = vector_friendly(*v);
    // One set of strides addresses both: give them one layout if copying broke it.
    if (k->strides() != v->strides()) {
      k = k->contiguous();
      v = v->contiguous();
    }
  }
  KvAttentionParams p =
      check_kv_attention_args(q, k_cache, v_cache, cache_seqlens, k, v, softmax_scale, causal, block_table, k_scale, v_scale);
  TORCH_CHECK(p.d == 64 || p.d == 128, kOp, ": the head dim D must be 64 or 128 on CUDA, got ", p.d);
  const c10::cuda::CUDAGuard guard(q.device());
  at::Tensor out = at::empty({p.b, p.sq, p.hq, p.d}, q.options());
  if (out.numel() == 0) return out;
  p.out = out.data_ptr();
  p.out_batch_stride = out.stride(0);
  p.out_seq_stride = out.stride(1);
  p.out_head_stride = out.stride(2);

  const int num_sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const size_t ws_bytes = cuda::kv_attention_workspace_bytes(p, num_sms);
  at::Tensor ws;
  if (ws_bytes > 0) ws = at::empty({static_cast<int64_t>(ws_bytes)}, q.options().dtype(at::kByte));
  const Status st = cuda::kv_attention_cuda(p, ws_bytes > 0 ? ws.data_ptr() : nullptr, num_sms,
                                            c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(st != Status::kUnsupported, kOp,
              ": the kernel does not take this layout: the caches (and int8 scales) need 16-byte aligned bases and "
              "strides that are multiples of 16 bytes except the head dim's (got k_cache strides ",
              k_cache.strides(), ")");
  TORCH_CHECK(st == Status::kOk, kOp, ": kernel launch failed: ", status_string(st),
              st == Status::kCudaError ? std::string(" (") + cudaGetErrorString(cudaGetLastError()) + ")"
                                       : std::string());
  return out;
}

}  // namespace
}  // namespace slimops

TORCH_LIBRARY_IMPL(slimops, CUDA, m) { m.impl("kv_attention", &slimops::kv_attention_cuda); }
