// CUDA implementation of slimops::sparse24_gemm: checks, device guard and
// stream, split-K workspace, then the torch-free sparse tensor-core kernel
// (csrc/cuda/sparse24). Built only when torch has CUDA.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "../cuda/sparse24/sparse24_launcher.h"
#include "sparse24_args.h"
#include "wo_gemm_args.h"

namespace slimops {
namespace {

constexpr const char* kOp = "slimops.sparse24_gemm (CUDA)";

// The Hopper kernel (sparse24_wgmma.cu) serves M from here on where it
// applies (sm_90; int4 values with whole boxes of 4 groups); below it the
// mma.sp kernel's small-M tiles stream W faster. Measured on H100
// (bench/results/s24_wgmma_sweep_h100_run3.md): at M = 16 mma.sp 1.64-1.67x
// cuBLAS against 1.33-1.42x; at M = 32 a tie (1.32-1.38x against
// 1.36-1.45x); from M = 48 the wgmma kernel leads.
constexpr int64_t kWgmmaFromM = 32;

// Which kernel serves a call. SLIMOPS_CUDA_SPARSE24 = mma | wgmma | dense
// forces one (to benchmark and test the paths against each other; a forced
// path that does not apply is an error); unset or "auto": by M and device.
// Read per call, like wo_gemm's SLIMOPS_CUDA_WO_GEMM.
enum class Path { kMma, kWgmma, kDense };

Path choose_path(const Sparse24Params& p) {
  const char* v = std::getenv("SLIMOPS_CUDA_SPARSE24");
  if (v != nullptr && *v != 0 && std::strcmp(v, "auto") != 0) {
    if (std::strcmp(v, "mma") == 0) return Path::kMma;
    if (std::strcmp(v, "dense") == 0) return Path::kDense;
    TORCH_CHECK(std::strcmp(v, "wgmma") == 0, "SLIMOPS_CUDA_SPARSE24 must be auto, mma, wgmma or dense, got '", v,
                "'");
    TORCH_CHECK(cuda::sparse24_wgmma_applies(p), kOp,
                ": SLIMOPS_CUDA_SPARSE24=wgmma does not apply to this call (sm_90 only; int4 values need a multiple "
                "of 4 groups a row and 16-byte aligned scales)");
    return Path::kWgmma;
  }
  if (p.m >= kWgmmaFromM && cuda::sparse24_wgmma_applies(p)) return Path::kWgmma;
  return p.m >= cuda::kSparse24DenseFromM ? Path::kDense : Path::kMma;
}

void check_status(Status st, const char* what) {
  TORCH_CHECK(st == Status::kOk, kOp, ": ", what, " failed: ", status_string(st),
              st == Status::kCudaError ? std::string(" (") + cudaGetErrorString(cudaGetLastError()) + ")"
                                       : std::string());
}

at::Tensor sparse24_gemm_cuda(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta,
                              const c10::optional<at::Tensor>& scales, const c10::optional<at::Tensor>& zeros,
                              const c10::optional<at::Tensor>& bias, int64_t bits, int64_t group_size, int64_t layout) {
  TORCH_CHECK(x.is_cuda(), kOp, ": x must be a CUDA tensor, got ", x.device());
  const Sparse24Shape s = check_sparse24_args(x, values, meta, scales, zeros, bias, bits, group_size, layout);
  TORCH_CHECK(layout == 1, kOp, ": the CUDA kernel reads the CUDA layout (1), got layout ", layout,
              " (convert with slimops.formats.sparse24_cuda.to_cuda_layout)");
  TORCH_CHECK(x.scalar_type() != at::kFloat, kOp, ": x must be float16 or bfloat16 on CUDA, got float32");
  TORCH_CHECK(s.n % 16 == 0 && s.k % 64 == 0, kOp, ": the CUDA kernel needs N % 16 == 0 and K % 64 == 0, got N = ",
              s.n, ", K = ", s.k);
  const c10::cuda::CUDAGuard guard(x.device());
  if (s.m == 0) return at::empty(s.out_sizes, x.options());
  at::Tensor x2 = x.reshape({s.m, s.k});
  if (x2.stride(1) != 1 || x2.stride(0) % 8 != 0 || reinterpret_cast<uintptr_t>(x2.data_ptr()) % 16 != 0)
    x2 = x2.contiguous();
  at::Tensor out = at::empty({s.m, s.n}, x.options());
  c10::optional<at::Tensor> bias32;
  if (bias.has_value()) bias32 = bias->to(at::kFloat).contiguous();

  Sparse24Params p;
  p.x = x2.data_ptr();
  p.values = values.data_ptr();
  p.meta = meta.data_ptr<uint8_t>();
  p.scales = scales.has_value() ? scales->data_ptr<float>() : nullptr;
  p.zeros = zeros.has_value() ? zeros->data_ptr<float>() : nullptr;
  p.bias = bias32.has_value() ? bias32->data_ptr<float>() : nullptr;
  p.out = out.data_ptr();
  p.m = s.m;
  p.n = s.n;
  p.k = s.k;
  p.x_row_stride = x2.stride(0);
  p.out_row_stride = s.n;
  p.bits = static_cast<int>(bits);
  p.group_size = bits == 4 ? group_size : 0;
  p.dtype = kernel_dtype(x, "x");
  p.layout = Sparse24Layout::kCuda;
  TORCH_CHECK(cuda::sparse24_applies(p), kOp, ": the kernel does not take this case (needs 16-byte aligned values "
              "and meta, an sm_80+ device)");
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const Path path = choose_path(p);
  if (path == Path::kDense) {
    // Large M off Hopper is bound by tensor-core math, where cuBLAS's dense
    // GEMM beats our mma.sp tiles: write the dense weight once
    // (bandwidth-bound, a few percent of the GEMM at these M) and hand it to
    // cuBLAS.
    at::Tensor dense = at::empty({s.n, s.k}, x.options());
    check_status(cuda::sparse24_decompress_cuda(p, dense.data_ptr(), stream), "decompress");
    const at::Tensor b = bias.has_value() ? bias->to(x.scalar_type()) : at::Tensor();
    return at::linear(x2, dense, b).view(s.out_sizes);
  }
  if (path == Path::kWgmma) {
    const size_t ws_bytes = cuda::sparse24_wgmma_workspace_bytes(p);
    at::Tensor ws;
    if (ws_bytes > 0) ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
    check_status(cuda::sparse24_wgmma_cuda(p, ws_bytes > 0 ? ws.data_ptr() : nullptr, stream),
                 "Hopper wgmma kernel launch");
    return out.view(s.out_sizes);
  }
  const int num_sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const size_t ws_bytes = cuda::sparse24_workspace_bytes(p, num_sms);
  at::Tensor ws;
  if (ws_bytes > 0) ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
  check_status(cuda::sparse24_gemm_cuda(p, ws_bytes > 0 ? ws.data_ptr() : nullptr, num_sms, stream), "kernel launch");
  return out.view(s.out_sizes);
}

}  // namespace
}  // namespace slimops

TORCH_LIBRARY_IMPL(slimops, CUDA, m) { m.impl("sparse24_gemm", &slimops::sparse24_gemm_cuda); }
