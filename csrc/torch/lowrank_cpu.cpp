// CPU implementation of slimops::lowrank_linear: checks, float32 staging, the
// two passes over the [M, r] intermediate split across at::parallel_for
// threads, and the large-M plan.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>

#include "../cpu/cpu_features.h"
#include "../cpu/lowrank_cpu.h"
#include "lowrank_args.h"

namespace slimops {
namespace {

// Up to this many rows of x the two streaming passes run (each weight byte
// read once per row of x, the intermediate in cache); above it, torch's two
// matmuls (blocked GEMMs reuse each weight across rows) win. Measured on the
// 2-core Xeon, K = N = 4096, r = 512, 2 threads (bench/results/lowrank_cpu_2t.md):
// bf16 weights 1.8x at M = 1, 1.24x at M = 2, 0.93x at 4 (torch's bf16 GEMV
// is slow); float32 weights 0.88-0.95x already at M = 1 (both stream 16 MB at
// the L3 rate and MKL's GEMV is as good), so float32 always takes torch's.
constexpr int64_t kFusedMaxMHalf = 2;
constexpr int64_t kFusedMaxMFloat = 0;
// Weight rows one task computes.
constexpr int64_t kRowsPerTask = 16;

template <typename Kernel>
void run_over_rows(int64_t rows, Kernel&& kernel) {
  std::atomic<int> status{static_cast<int>(Status::kOk)};
  const int64_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    const Status st = kernel(t0 * kRowsPerTask, std::min(t1 * kRowsPerTask, rows));
    if (st != Status::kOk) status.store(static_cast<int>(st));
  });
  const Status st = static_cast<Status>(status.load());
  TORCH_CHECK(st == Status::kOk, "slimops.lowrank_linear (CPU): kernel failed: ", status_string(st));
}

at::Tensor lowrank_linear_cpu(const at::Tensor& x, const at::Tensor& v, const at::Tensor& u,
                              const c10::optional<at::Tensor>& bias) {
  TORCH_CHECK(x.device().is_cpu(), "slimops.lowrank_linear (CPU): x must be on the CPU, got ", x.device());
  const LowRankShape s = check_lowrank_args(x, v, u, bias);
  if (s.m == 0) return at::empty(s.out_sizes, x.options());
  // A forced ISA (tests, SLIMOPS_CPU_ISA) runs its own kernels at every M,
  // so the tests cover them whatever the thresholds say.
  const int64_t fused_max_m = x.scalar_type() == at::kFloat ? kFusedMaxMFloat : kFusedMaxMHalf;
  if (!cpu::cpu_isa_forced() && s.m > fused_max_m) {
    // Large M: the intermediate is a real matrix and the blocked GEMMs of
    // torch's two matmuls (in x's dtype, as a user would write them) win.
    c10::optional<at::Tensor> b;
    if (bias.has_value()) b = bias->to(x.scalar_type());
    return at::linear(at::linear(x, v), u, b);
  }

  const at::Tensor x32 = x.reshape({s.m, s.k}).to(at::kFloat).contiguous();
  at::Tensor out32 = at::empty({s.m, s.n}, x.options().dtype(at::kFloat));
  at::Tensor t = at::empty({s.m, s.r}, x.options().dtype(at::kFloat));
  c10::optional<at::Tensor> bias32;
  if (bias.has_value()) bias32 = bias->to(at::kFloat).contiguous();

  LowRankParams p = make_lowrank_params(s, v, u, bias32);
  p.x = x32.data_ptr<float>();
  p.x_row_stride = s.k;
  p.out = out32.data_ptr<float>();
  p.out_row_stride = s.n;
  float* tp = t.data_ptr<float>();

  const bool avx2 = cpu::selected_cpu_isa() >= cpu::CpuIsa::kAvx2;
  run_over_rows(s.r, [&](int64_t j0, int64_t j1) {
    return avx2 ? cpu::lowrank_down_avx2(p, tp, j0, j1) : cpu::lowrank_down_scalar(p, tp, j0, j1);
  });
  run_over_rows(s.n, [&](int64_t n0, int64_t n1) {
    return avx2 ? cpu::lowrank_up_avx2(p, tp, n0, n1) : cpu::lowrank_up_scalar(p, tp, n0, n1);
  });
  if (x.scalar_type() != at::kFloat) out32 = out32.to(x.scalar_type());
  return out32.view(s.out_sizes);
}

}  // namespace

TORCH_LIBRARY_IMPL(slimops, CPU, m) { m.impl("lowrank_linear", &lowrank_linear_cpu); }

}  // namespace slimops
