// CPU implementation of slimops::kv_attention: checks (including the values
// of cache_seqlens and block_table, which the CPU can read for free), the
// append, then split-KV attention tasks on at::parallel_for threads and the
// combine of their partials.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "../cpu/cpu_features.h"
#include "../cpu/kv_attention_cpu.h"
#include "kv_attention_args.h"

namespace slimops {
namespace {

constexpr const char* kOp = "slimops.kv_attention (CPU)";
// Keys below which a split is not worth its partial and combine.
constexpr int64_t kMinKeysPerSplit = 512;

void check_status(std::atomic<int>& status) {
  const Status st = static_cast<Status>(status.load());
  TORCH_CHECK(st == Status::kOk, kOp, ": kernel failed: ", status_string(st));
}

// Positions and blocks the kernels will touch must lie inside the cache.
void check_cache_indices(const KvAttentionParams& p, const at::Tensor& k_cache) {
  const int64_t append = p.k_new != nullptr ? p.sq : 0;
  for (int64_t b = 0; b < p.b; ++b) {
    const int64_t len = p.cache_seqlens[b];
    TORCH_CHECK(len >= 0 && len + append <= p.s_max, kOp, ": cache_seqlens[", b, "] = ", len,
                append ? " plus the " + std::to_string(append) + " appended tokens" : std::string(),
                " does not fit the cache's ", p.s_max, " positions");
    if (p.block_table == nullptr) continue;
    const int64_t blocks = (len + append + p.block_size - 1) / p.block_size;
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t blk = p.block_table[b * p.block_table_batch_stride + i];
      TORCH_CHECK(blk >= 0 && blk < k_cache.size(0), kOp, ": block_table[", b, ", ", i, "] = ", blk,
                  " is not a block of the cache (", k_cache.size(0), " blocks)");
    }
  }
}

at::Tensor kv_attention_cpu(const at::Tensor& q, at::Tensor& k_cache, at::Tensor& v_cache,
                            const at::Tensor& cache_seqlens, const c10::optional<at::Tensor>& k,
                            const c10::optional<at::Tensor>& v, c10::optional<double> softmax_scale, bool causal,
                            const c10::optional<at::Tensor>& block_table, c10::optional<at::Tensor> k_scale,
                            c10::optional<at::Tensor> v_scale) {
  TORCH_CHECK(q.device().is_cpu(), kOp, ": q must be on the CPU, got ", q.device());
  KvAttentionParams p =
      check_kv_attention_args(q, k_cache, v_cache, cache_seqlens, k, v, softmax_scale, causal, block_table, k_scale, v_scale);
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16, kOp,
              ": q must be float32 or bfloat16 on the CPU, got ", q.scalar_type());
  at::Tensor out = at::empty({p.b, p.sq, p.hq, p.d}, q.options());
  if (out.numel() == 0) return out;
  check_cache_indices(p, k_cache);
  p.out = out.data_ptr();
  p.out_batch_stride = out.stride(0);
  p.out_seq_stride = out.stride(1);
  p.out_head_stride = out.stride(2);

  std::atomic<int> status{static_cast<int>(Status::kOk)};
  const int64_t heads = p.b * p.hkv;
  if (p.k_new != nullptr) {
    at::parallel_for(0, heads, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const Status st = cpu::kv_append_cpu(p, t / p.hkv, t % p.hkv);
        if (st != Status::kOk) status.store(static_cast<int>(st));
      }
    });
    check_status(status);
  }

  // Split the keys when there are too few sequences to keep every thread
  // busy (B = 1 always is).
  int64_t max_keys = 0;
  for (int64_t b = 0; b < p.b; ++b) max_keys = std::max(max_keys, cpu::kv_total_keys(p, b));
  const int64_t want_tasks = 2 * static_cast<int64_t>(at::get_num_threads());
  const int64_t nsplit = std::clamp<int64_t>((want_tasks + p.b - 1) / p.b, 1,
                                             std::max<int64_t>(1, max_keys / kMinKeysPerSplit));
  const int64_t keys_per_split = (max_keys + nsplit - 1) / nsplit;
  const int64_t rows = cpu::kv_rows(p);
  const int64_t part_floats = rows * (p.d + 2);
  std::vector<float> parts(static_cast<size_t>(p.b * nsplit * part_floats));
  auto partial = [&](int64_t task) {
    float* base = parts.data() + task * part_floats;
    return cpu::KvPartial{base, base + rows * p.d, base + rows * p.d + rows};
  };
  const cpu::CpuIsa isa = cpu::selected_cpu_isa();
  const bool avx512 = isa >= cpu::CpuIsa::kAvx512Vnni && p.d % 16 == 0;
  const bool avx2 = isa >= cpu::CpuIsa::kAvx2 && p.d % 8 == 0;
  // The automatic choice adds vdpbf16ps for bf16 caches where the CPU has
  // it; a forced ISA keeps to its own kernels (so tests reach both).
  const bool bf16_dot = avx512 && !cpu::cpu_isa_forced() && cpu::cpu_has_avx512_bf16() &&
                        p.dtype == DType::kBFloat16 && !p.cache_int8 && p.d % 32 == 0;
  at::parallel_for(0, p.b * nsplit, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scratch(static_cast<size_t>(cpu::kv_scratch_floats(p)));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / nsplit, split = t % nsplit;
      const int64_t j0 = split * keys_per_split;
      const int64_t j1 = std::max(j0, std::min(j0 + keys_per_split, cpu::kv_total_keys(p, b)));
      const Status st = bf16_dot ? cpu::kv_attend_avx512bf16(p, b, j0, j1, scratch.data(), partial(t))
                        : avx512 ? cpu::kv_attend_avx512(p, b, j0, j1, scratch.data(), partial(t))
                        : avx2   ? cpu::kv_attend_avx2(p, b, j0, j1, scratch.data(), partial(t))
                                 : cpu::kv_attend_scalar(p, b, j0, j1, scratch.data(), partial(t));
      if (st != Status::kOk) status.store(static_cast<int>(st));
    }
  });
  check_status(status);
  at::parallel_for(0, p.b, 1, [&](int64_t t0, int64_t t1) {
    std::vector<cpu::KvPartial> mine(static_cast<size_t>(nsplit));
    for (int64_t b = t0; b < t1; ++b) {
      for (int64_t s = 0; s < nsplit; ++s) mine[s] = partial(b * nsplit + s);
      const Status st = cpu::kv_combine_cpu(p, b, mine.data(), nsplit);
      if (st != Status::kOk) status.store(static_cast<int>(st));
    }
  });
  check_status(status);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(slimops, CPU, m) { m.impl("kv_attention", &kv_attention_cpu); }

}  // namespace slimops
