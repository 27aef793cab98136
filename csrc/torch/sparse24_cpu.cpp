// CPU implementation of slimops::sparse24_gemm: checks, float32 staging of x,
// int4 kept values dequantised (the CPU kernels take float kept values), and
// output columns split across at::parallel_for threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <climits>

#include "../cpu/cpu_features.h"
#include "../cpu/sparse24_cpu.h"
#include "sparse24_args.h"
#include "wo_gemm_args.h"

namespace slimops {
namespace {

constexpr int64_t kColumnsPerTask = 16;
// From this many rows of x the transposed-x kernel (sparse FMAs, each kept
// value broadcast to 16 rows) beats expanding the weight to dense pieces
// (dense FMAs, x rows loaded per piece). Measured below.
constexpr int64_t kTransposedFromM = 8;

// float32 kept values [N, K/2] of packed int4 ones: (q - zero) * scale.
at::Tensor dequantize_kept(const at::Tensor& packed, const at::Tensor& scales, const c10::optional<at::Tensor>& zeros) {
  const int64_t n = packed.size(0), half = packed.size(1) * 2, groups = scales.size(1);
  // formats.int4 layout: blocks of 32 values, byte j holds j (low) and j + 16 (high).
  const at::Tensor b = packed.view({n, half / 32, 1, 16});
  const at::Tensor q = at::cat({at::bitwise_and(b, 0x0F), at::bitwise_right_shift(b, 4)}, 2).reshape({n, groups, half / groups});
  const at::Tensor z = zeros.has_value() ? zeros->unsqueeze(-1) : at::full({1}, 8.0f, scales.options());
  return ((q.to(at::kFloat) - z) * scales.unsqueeze(-1)).reshape({n, half});
}

at::Tensor sparse24_gemm_cpu(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta,
                             const c10::optional<at::Tensor>& scales, const c10::optional<at::Tensor>& zeros,
                             const c10::optional<at::Tensor>& bias, int64_t bits, int64_t group_size, int64_t layout) {
  TORCH_CHECK(x.device().is_cpu(), "slimops.sparse24_gemm (CPU): x must be on the CPU, got ", x.device());
  const Sparse24Shape s = check_sparse24_args(x, values, meta, scales, zeros, bias, bits, group_size, layout);
  TORCH_CHECK(layout == 0, "slimops.sparse24_gemm (CPU): the CPU kernels read the canonical layout (0), got layout ",
              layout, " (slimops.formats.sparse24_cuda.from_cuda_layout converts back)");
  TORCH_CHECK(x.scalar_type() != at::kHalf || bits == 4,
              "slimops.sparse24_gemm (CPU): float16 kept values are not supported on the CPU (use float32 or bfloat16)");
  if (s.m == 0) return at::empty(s.out_sizes, x.options());

  const at::Tensor kept = bits == 4 ? dequantize_kept(values, *scales, zeros) : values;
  const at::Tensor x32 = x.reshape({s.m, s.k}).to(at::kFloat).contiguous();
  at::Tensor out32 = at::empty({s.m, s.n}, x.options().dtype(at::kFloat));
  c10::optional<at::Tensor> bias32;
  if (bias.has_value()) bias32 = bias->to(at::kFloat).contiguous();

  Sparse24Params p;
  p.x = x32.data_ptr<float>();
  p.values = kept.data_ptr();
  p.meta = meta.data_ptr<uint8_t>();
  p.bias = bias32.has_value() ? bias32->data_ptr<float>() : nullptr;
  p.out = out32.data_ptr<float>();
  p.m = s.m;
  p.n = s.n;
  p.k = s.k;
  p.x_row_stride = s.k;
  p.out_row_stride = s.n;
  p.bits = 16;
  p.dtype = kernel_dtype(kept, "values");
  p.layout = Sparse24Layout::kCanonical;

  const cpu::CpuIsa isa = cpu::selected_cpu_isa();
  const bool avx512 = isa >= cpu::CpuIsa::kAvx512Vnni, avx2 = isa >= cpu::CpuIsa::kAvx2;
  const bool transposed = avx2 && s.m >= kTransposedFromM;
  // The automatic choice adds vdpbf16ps where x and the kept values are
  // bf16 (sparse24_avx512bf16.cpp): x's pairs are exact in bf16 only then.
  // Its table gathers 16 rows with 32-bit offsets: K < 2^27.
  const bool pairs = transposed && avx512 && !cpu::cpu_isa_forced() && cpu::cpu_has_avx512_bf16() &&
                     x.scalar_type() == at::kBFloat16 && kept.scalar_type() == at::kBFloat16 &&
                     s.k <= INT32_MAX / 16;
  std::atomic<int> status{static_cast<int>(Status::kOk)};
  at::Tensor xt, pair_table;
  if (pairs) {
    const int64_t groups = s.k / 4, mblocks = (s.m + 15) / 16;
    pair_table = at::empty({mblocks * groups * cpu::kSparse24PairTableGroupBytes / 2}, x.options().dtype(at::kShort));
    auto* table = reinterpret_cast<uint16_t*>(pair_table.data_ptr<int16_t>());
    at::parallel_for(0, groups, 256, [&](int64_t g0, int64_t g1) {
      const Status st = cpu::sparse24_pair_table_avx512bf16(p, table, g0, g1);
      if (st != Status::kOk) status.store(static_cast<int>(st));
    });
  } else if (transposed) {
    // [mblocks, 16, K] -> [mblocks, K, 16], rows past M zero.
    const int64_t mblocks = (s.m + 15) / 16;
    at::Tensor padded = at::zeros({mblocks * 16, s.k}, x32.options());
    padded.narrow(0, 0, s.m).copy_(x32);
    xt = padded.view({mblocks, 16, s.k}).transpose(1, 2).contiguous();
  }
  const int64_t tasks = (s.n + kColumnsPerTask - 1) / kColumnsPerTask;
  if (status.load() == static_cast<int>(Status::kOk)) at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    const int64_t n0 = t0 * kColumnsPerTask, n1 = std::min(t1 * kColumnsPerTask, s.n);
    Status st;
    if (pairs) {
      st = cpu::sparse24_rows_pairs_avx512bf16(p, reinterpret_cast<const uint16_t*>(pair_table.data_ptr<int16_t>()),
                                               n0, n1);
    } else if (transposed) {
      st = avx512 ? cpu::sparse24_rows_xt_avx512(p, xt.data_ptr<float>(), n0, n1)
                  : cpu::sparse24_rows_xt_avx2(p, xt.data_ptr<float>(), n0, n1);
    } else {
      st = avx512 ? cpu::sparse24_rows_avx512(p, n0, n1)
           : avx2 ? cpu::sparse24_rows_avx2(p, n0, n1)
                  : cpu::sparse24_rows_scalar(p, n0, n1);
    }
    if (st != Status::kOk) status.store(static_cast<int>(st));
  });
  const Status st = static_cast<Status>(status.load());
  TORCH_CHECK(st == Status::kOk, "slimops.sparse24_gemm (CPU): kernel failed: ", status_string(st));
  if (x.scalar_type() != at::kFloat) out32 = out32.to(x.scalar_type());
  return out32.view(s.out_sizes);
}

}  // namespace

TORCH_LIBRARY_IMPL(slimops, CPU, m) { m.impl("sparse24_gemm", &sparse24_gemm_cpu); }

}  // namespace slimops
