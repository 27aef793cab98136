// CUDA implementation of slimops::lowrank_linear: checks, device guard and
// stream, then the fused torch-free kernel for small M or two cuBLAS GEMMs.
// Built only when torch has CUDA.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "../cuda/lowrank/lowrank_launcher.h"
#include "lowrank_args.h"

namespace slimops {
namespace {

// Where the fused kernel (lowrank_fused.cu) pays. Measured on H100, bf16,
// L2 flushed, against these very two cuBLAS GEMMs in the same run (kernel
// time / two GEMMs): K = N = 4096, r = 512: M = 1 0.89x, M = 4 1.15x, M = 8
// 1.45x, M = 16 2.16x; K = N = 8192, r = 1024: M = 1 1.13x, M = 4 1.71x. The
// kernel is latency-bound (about 0.7 TB/s at 8 MiB of weights): it wins
// only where two library launches cost more than its serial phases, i.e. at
// M = 1 and up to the 8 MiB of weights measured (r (K + N) = 4 Mi elements).
constexpr int64_t kFusedMaxM = 1;
constexpr int64_t kFusedMaxWeightElems = int64_t(4) << 20;

// SLIMOPS_CUDA_LOWRANK=fused|dense forces a path, so tests can check the
// fused kernel at every M it supports and benchmarks can time each path;
// "fused" still falls back where the kernel does not apply. Read per call
// so a test can set it.
enum class Path { kAuto, kFused, kDense };
Path requested_path() {
  const char* env = std::getenv("SLIMOPS_CUDA_LOWRANK");
  if (env != nullptr && std::strcmp(env, "fused") == 0) return Path::kFused;
  if (env != nullptr && std::strcmp(env, "dense") == 0) return Path::kDense;
  return Path::kAuto;
}

bool want_fused(const LowRankShape& s, const at::Tensor& x) {
  if (x.scalar_type() == at::kFloat || s.m > cuda::kLowRankFusedMaxM) return false;
  switch (requested_path()) {
    case Path::kFused: return true;
    case Path::kDense: return false;
    case Path::kAuto: break;
  }
  return s.m <= kFusedMaxM && s.r * (s.k + s.n) <= kFusedMaxWeightElems;
}

void check_launch(Status st) {
  TORCH_CHECK(st == Status::kOk, "slimops.lowrank_linear (CUDA): fused kernel launch failed: ", status_string(st),
              st == Status::kCudaError ? std::string(" (") + cudaGetErrorString(cudaGetLastError()) + ")"
                                       : std::string());
}

// The fused kernel's workspace, one per (device, stream): zero when made, and
// every launch that completes leaves it zero, so calls need no memset (a
// second launch per call). Launches on one stream are ordered, so sharing per
// stream is safe; never across streams. A CUDA graph keeps the workspace of
// the stream it was captured on: replaying it on another stream while that
// stream runs the op would race. Replaced
// when a larger one is needed: the caching allocator frees in stream order.
at::Tensor fused_workspace(const at::Tensor& x, size_t bytes, const c10::cuda::CUDAStream& stream) {
  static std::mutex mu;
  // Never destroyed: tensors freed during interpreter exit can outlive CUDA.
  static auto* cache = new std::map<std::pair<c10::DeviceIndex, c10::StreamId>, at::Tensor>();
  const std::lock_guard<std::mutex> lock(mu);
  at::Tensor& ws = (*cache)[{stream.device_index(), stream.id()}];
  if (!ws.defined() || static_cast<size_t>(ws.numel()) < bytes)
    ws = at::zeros({static_cast<int64_t>(bytes)}, x.options().dtype(at::kByte));
  return ws;
}

// The rows of x as [m, k] with unit column stride, made contiguous when the
// fused kernel would otherwise have to refuse them (a row stride or base that
// is not a multiple of 16 bytes); cheap at the M the kernel takes.
at::Tensor rows_of(const at::Tensor& x, const LowRankShape& s, bool for_fused) {
  at::Tensor x2 = x.reshape({s.m, s.k});
  if (x2.stride(1) != 1) return x2.contiguous();
  const bool aligned = x2.stride(0) % 8 == 0 && reinterpret_cast<uintptr_t>(x2.data_ptr()) % 16 == 0;
  if (for_fused && !aligned && s.k % 8 == 0) return x2.contiguous();
  return x2;
}

at::Tensor lowrank_linear_cuda(const at::Tensor& x, const at::Tensor& v, const at::Tensor& u,
                               const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.is_cuda(), "slimops.lowrank_linear (CUDA): x must be a CUDA tensor, got ", x.device());
  const LowRankShape s = check_lowrank_args(x, v, u, bias);
  const c10::cuda::CUDAGuard guard(x.device());
  if (s.m == 0 || s.n == 0) return at::empty(s.out_sizes, x.options());

  const bool fused_candidate = want_fused(s, x);
  const at::Tensor x2 = rows_of(x, s, fused_candidate);
  if (fused_candidate) {
    c10::optional<at::Tensor> bias32;
    if (bias.has_value()) bias32 = bias->to(at::kFloat).contiguous();
    at::Tensor out = at::empty({s.m, s.n}, x.options());
    LowRankParams p = make_lowrank_params(s, v, u, bias32);
    p.x = x2.data_ptr();
    p.x_row_stride = x2.stride(0);
    p.out = out.data_ptr();
    p.out_row_stride = s.n;
    if (cuda::lowrank_fused_applies(p)) {
      const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream();
      const at::Tensor ws = fused_workspace(x, cuda::lowrank_fused_workspace_bytes(p), stream);
      check_launch(cuda::lowrank_fused_cuda(p, ws.data_ptr(), stream.stream()));
      return out.view(s.out_sizes);
    }
  }
  // Large M (or a shape the kernel refuses): two tensor-core GEMMs in x's
  // dtype; cuBLAS accumulates in fp32 but rounds the [M, r] intermediate.
  const at::Tensor b = bias.has_value() ? bias->to(x.scalar_type()) : at::Tensor();
  return at::linear(at::linear(x2, v), u, b).view(s.out_sizes);
}

}  // namespace
}  // namespace slimops

TORCH_LIBRARY_IMPL(slimops, CUDA, m) { m.impl("lowrank_linear", &slimops::lowrank_linear_cuda); }
