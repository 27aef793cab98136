// CUDA implementation of slimops::wo_gemm: checks, device guard and stream,
// then the torch-free launcher. Built only when torch has CUDA.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdlib>
#include <cstring>

#include "../cuda/wo_gemm/wo_gemm_launcher.h"
#include "split_k_counters.h"
#include "wo_gemm_args.h"
#include "wo_gemm_lowrank.h"

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
// The Hopper kernel (wo_gemm_wgmma.cu), where it applies, for M in
// [kWgmmaMinM, max]: measured on H100 (bench/results/wgmma_sweep_int*_h100_run*.md)
// it beats the mma.sync kernel from M = 64 (at M = 32 they are within noise,
// mma ahead at 16) and loses to dequantise + cuBLAS above M = 1024 (int4) or
// 256 (int8), where cuBLAS's bf16 tensor-core rate outweighs the cost of one
// dequantisation pass.
constexpr int64_t kWgmmaMinM = 33;
constexpr int64_t kWgmmaMaxMInt4 = 1024;
constexpr int64_t kWgmmaMaxMInt8 = 256;

// Which kernel serves a call. SLIMOPS_CUDA_WO_GEMM = gemv | mma | wgmma |
// dense forces one (to benchmark and test the paths against each other; a
// forced path that does not apply is an error); unset or "auto": by M, as
// above. Read per call (a getenv is ~0.1 us next to a launch), so tests can
// switch it.
enum class Path { kAuto, kCudaCore, kMma, kWgmma, kDense };

Path forced_path() {
  const char* v = std::getenv("SLIMOPS_CUDA_WO_GEMM");
  if (v == nullptr || *v == 0 || std::strcmp(v, "auto") == 0) return Path::kAuto;
  if (std::strcmp(v, "gemv") == 0) return Path::kCudaCore;
  if (std::strcmp(v, "mma") == 0) return Path::kMma;
  if (std::strcmp(v, "wgmma") == 0) return Path::kWgmma;
  if (std::strcmp(v, "dense") == 0) return Path::kDense;
  TORCH_CHECK(false, "SLIMOPS_CUDA_WO_GEMM must be auto, gemv, mma, wgmma or dense, got '", v, "'");
}

Path choose_path(const WoGemmParams& p) {
  const Path forced = forced_path();
  if (forced != Path::kAuto) {
    TORCH_CHECK(forced != Path::kMma || cuda::wo_gemm_mma_applies(p),
                "slimops.wo_gemm (CUDA): SLIMOPS_CUDA_WO_GEMM=mma does not apply to this call");
    TORCH_CHECK(forced != Path::kWgmma || cuda::wo_gemm_wgmma_applies(p),
                "slimops.wo_gemm (CUDA): SLIMOPS_CUDA_WO_GEMM=wgmma does not apply to this call (sm_90 only)");
    return forced;
  }
  const int64_t wgmma_max_m = p.bits == 4 ? kWgmmaMaxMInt4 : kWgmmaMaxMInt8;
  if (p.m >= kWgmmaMinM && p.m <= wgmma_max_m && cuda::wo_gemm_wgmma_applies(p)) return Path::kWgmma;
  const int64_t mma_min_m = p.bits == 4 ? kMmaMinMInt4 : kMmaMinMInt8;
  if (p.m >= mma_min_m && p.m <= kMmaMaxM && cuda::wo_gemm_mma_applies(p)) return Path::kMma;
  return cuda::wo_gemm_cuda_plan(p) == cuda::WoGemmPlan::kDequantThenDense ? Path::kDense : Path::kCudaCore;
}

void check_launch(Status st, const char* what) {
  TORCH_CHECK(st == Status::kOk, "slimops.wo_gemm (CUDA): ", what, " launch failed: ", status_string(st),
              st == Status::kCudaError ? std::string(" (") + cudaGetErrorString(cudaGetLastError()) + ")"
                                       : std::string());
}

// x as [m, k] rows with unit stride, bias in float32, and the params that
// point at them (the tensors keep the pointers alive).
struct KernelInputs {
  at::Tensor x2;
  c10::optional<at::Tensor> bias32;
  WoGemmParams p;
};

KernelInputs kernel_inputs(const at::Tensor& x, const WoGemmShape& s, const at::Tensor& qweight,
                           const at::Tensor& scales, const c10::optional<at::Tensor>& zeros,
                           const c10::optional<at::Tensor>& bias, int64_t bits) {
  KernelInputs in;
  in.x2 = x.reshape({s.m, s.k});
  if (in.x2.stride(1) != 1) in.x2 = in.x2.contiguous();
  if (bias.has_value()) in.bias32 = bias->to(at::kFloat).contiguous();
  in.p = make_wo_gemm_params(s, qweight, scales, zeros, in.bias32, bits);
  in.p.x = in.x2.data_ptr();
  in.p.x_row_stride = in.x2.stride(0);
  in.p.x_dtype = kernel_dtype(x, "x");
  return in;
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

  const KernelInputs in = kernel_inputs(x, s, qweight, scales, zeros, bias, bits);
  WoGemmParams p = in.p;

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const Path path = choose_path(p);
  if (path == Path::kMma || path == Path::kWgmma) {
    const bool wgmma = path == Path::kWgmma;
    at::Tensor out = at::empty({s.m, s.n}, x.options());
    p.out = out.data_ptr();
    // Split-K partials (the caching allocator keeps the bytes ours until the
    // kernel has run, in stream order) and arrival counters: the stream's
    // zeroed ones, or the workspace's, which the launcher zeroes.
    const size_t ws_bytes = wgmma ? cuda::wo_gemm_wgmma_workspace_bytes(p) : cuda::wo_gemm_mma_workspace_bytes(p);
    at::Tensor ws;
    if (ws_bytes > 0) ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
    void* const ws_ptr = ws_bytes > 0 ? ws.data_ptr() : nullptr;
    const cuda::SplitKCounters counters =
        ws_bytes > 0 ? zeroed_split_k_counters(x.device(), stream) : cuda::SplitKCounters{};
    if (wgmma)
      check_launch(cuda::wo_gemm_wgmma_cuda(p, ws_ptr, stream, counters), "Hopper wgmma wo_gemm");
    else
      check_launch(cuda::wo_gemm_mma_cuda(p, ws_ptr, stream, counters), "tensor-core wo_gemm");
    return out.view(s.out_sizes);
  }
  if (path == Path::kDense) {
    // Large M: one pass to x's dtype, then cuBLAS on tensor cores.
    at::Tensor w = at::empty({s.n, s.k}, x.options());
    check_launch(cuda::dequantize_cuda(p, w.data_ptr(), stream), "dequantize");
    const at::Tensor b = bias.has_value() ? bias->to(x.scalar_type()) : at::Tensor();
    return at::linear(in.x2, w, b).view(s.out_sizes);
  }
  at::Tensor out = at::empty({s.m, s.n}, x.options());
  p.out = out.data_ptr();
  check_launch(cuda::wo_gemm_cuda(p, stream), "wo_gemm");
  return out.view(s.out_sizes);
}

// x @ dequant(Wq)^T + (x @ lr_b^T) @ lr_a^T + bias: one kernel (the
// tensor-core GEMM, the correction one more split-K partial) where it applies,
// M <= 16 on Llama-sized layers; otherwise wo_gemm and lowrank_linear.
at::Tensor wo_gemm_lowrank_cuda(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scales,
                                const c10::optional<at::Tensor>& zeros, const c10::optional<at::Tensor>& bias,
                                const at::Tensor& lr_a, const at::Tensor& lr_b, int64_t bits, int64_t group_size) {
  TORCH_CHECK(x.is_cuda(), "slimops.wo_gemm_lowrank (CUDA): x must be a CUDA tensor, got ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16,
              "slimops.wo_gemm_lowrank (CUDA): x must be float16 or bfloat16, got ", x.scalar_type());
  const WoGemmShape s = check_wo_gemm_args(x, qweight, scales, zeros, bias, bits, group_size);
  const int64_t rank = check_lowrank_correction(x, lr_a, lr_b, s);
  const c10::cuda::CUDAGuard guard(x.device());
  if (s.m == 0 || s.n == 0) return at::empty(s.out_sizes, x.options());

  const KernelInputs in = kernel_inputs(x, s, qweight, scales, zeros, bias, bits);
  WoGemmParams p = in.p;
  const at::Tensor a = lr_a.contiguous(), b = lr_b.contiguous();
  const LowRankCorrection lrc{a.data_ptr(), b.data_ptr(), rank};
  if (!cuda::wo_gemm_mma_lowrank_applies(p, lrc))
    return wo_gemm_lowrank_composed(x, qweight, scales, zeros, bias, lr_a, lr_b, bits, group_size);

  at::Tensor out = at::empty({s.m, s.n}, x.options());
  p.out = out.data_ptr();
  // Counters, t = x lr_b^T and split-K partials; the launcher zeroes what
  // must start at zero.
  const size_t ws_bytes = cuda::wo_gemm_mma_lowrank_workspace_bytes(p, lrc);
  at::Tensor ws = at::empty({static_cast<int64_t>(ws_bytes)}, x.options().dtype(at::kByte));
  check_launch(cuda::wo_gemm_mma_lowrank_cuda(p, lrc, ws.data_ptr(), c10::cuda::getCurrentCUDAStream().stream()),
               "tensor-core wo_gemm with low-rank correction");
  return out.view(s.out_sizes);
}

}  // namespace
}  // namespace slimops

TORCH_LIBRARY_IMPL(slimops, CUDA, m) {
  m.impl("wo_gemm", &slimops::wo_gemm_cuda);
  m.impl("wo_gemm_lowrank", &slimops::wo_gemm_lowrank_cuda);
}
