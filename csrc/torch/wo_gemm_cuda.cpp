// CUDA implementation of slimops::wo_gemm: checks, device guard and stream,
// then the torch-free launcher. Built only when torch has CUDA.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../cuda/wo_gemm/wo_gemm_launcher.h"
#include "wo_gemm_args.h"

namespace slimops {
namespace {

// Rows of x served by the tensor-core kernel (wo_gemm_mma.cu) where it
// applies; outside [min, kMmaMaxM] the older paths run. Measured on H100,
// bf16, the design.md shapes (int4 g128, int8 per channel): the tensor-core
// kernel beats the CUDA-core GEMV (wo_gemv.cu) at every M for int4 and from
// M = 2 for int8, where the GEMV stays ~5-10% ahead at M = 1; it beats
// dequantise + cuBLAS up to M = 128 and loses to it at M = 256.
constexpr int64_t kMmaMinMInt4 = 1;
constexpr int64_t kMmaMinMInt8 = 2;
constexpr int64_t kMmaMaxM = 128;

void check_launch(Status st, const char* what) {
  TORCH_CHECK(st == Status::kOk, "slimops.wo_gemm (CUDA): ", what, " launch failed: ", status_string(st),
              st == Status::kCudaError ? std::string(" (") + cudaGetErrorString(cudaGetLastError()) + ")"
                                       : std::string());
}

at::Tensor wo_gemm_cuda(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                        const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias, int64_t bits,
                        int64_t group_size) {
  TORCH_CHECK(x.is_cuda(), "slimops.wo_gemm (CUDA): x must be a CUDA tensor, got ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16,
              "slimops.wo_gemm (CUDA): x must be float16 or bfloat16, got ", x.scalar_type());
  const WoGemmShape s = check_wo_gemm_args(x, qweight, scales, zeros, bias, bits, group_size);
  const c10::cuda::CUDAGuard guard(x.device());
  if (s.m == 0 || s.n == 0) return at::empty(s.out_sizes, x.options());

  at::Tensor x2 = x.reshape({s.m, s.k});
  if (x2.stride(1) != 1) x2 = x2.contiguous();
  c10::optional<at::Tensor> bias32;
  if (bias.has_value()) bias32 = bias->to(at::kFloat).contiguous();

  WoGemmParams p = make_wo_gemm_params(s, qweight, scales, zeros, bias32, bits);
  p.x = x2.data_ptr();
  p.x_row_stride = x2.stride(0);
  p.x_dtype = kernel_dtype(x, "x");

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const int64_t mma_min_m = bits == 4 ? kMmaMinMInt4 : kMmaMinMInt8;
  if (s.m >= mma_min_m && s.m <= kMmaMaxM && cuda::wo_gemm_mma_applies(p)) {
    at::Tensor out = at::empty({s.m, s.n}, x.options());
    p.out = out.data_ptr();
    // Split-K partials and arrival counters; the launcher initialises what
    // it needs, and the caching allocator keeps the bytes ours until the
    // kernel has run (stream order).
    const size_t ws_bytes = cuda::wo_gemm_mma_workspace_bytes(p);
    at::Tensor ws;
    if (ws_bytes > 0) ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
    check_launch(cuda::wo_gemm_mma_cuda(p, ws_bytes > 0 ? ws.data_ptr() : nullptr, stream), "tensor-core wo_gemm");
    return out.view(s.out_sizes);
  }
  if (cuda::wo_gemm_cuda_plan(p) == cuda::WoGemmPlan::kDequantThenDense) {
    // Large M: one pass to x's dtype, then cuBLAS on tensor cores.
    at::Tensor w = at::empty({s.n, s.k}, x.options());
    check_launch(cuda::dequantize_cuda(p, w.data_ptr(), stream), "dequantize");
    const at::Tensor b = bias.has_value() ? bias->to(x.scalar_type()) : at::Tensor();
    return at::linear(x2, w, b).view(s.out_sizes);
  }
  at::Tensor out = at::empty({s.m, s.n}, x.options());
  p.out = out.data_ptr();
  check_launch(cuda::wo_gemm_cuda(p, stream), "wo_gemm");
  return out.view(s.out_sizes);
}

}  // namespace
}  // namespace slimops

TORCH_LIBRARY_IMPL(slimops, CUDA, m) { m.impl("wo_gemm", &slimops::wo_gemm_cuda); }
