// Launcher of the fused KV-cache attention (kv_attention_kernel.cuh): checks
// what the kernels assume, picks the KV split count and the template
// instance, and merges the splits when there is more than one.
//
// Split heuristic. The device holds the real lengths, so the host sizes the
// grid for the capacity (s_max, or max_blocks * block_size when paged): with
// T tiles (64 keys; int8 tiles 128: the same bytes)
// and G = b * hkv * m_tiles independent blocks, a split count s costs
// ceil(G s / slots) waves of ceil(T / s) + kSplitOverheadTiles tiles each,
// slots being kSlotsPerSm blocks per SM (below). The cheapest s wins, the
// smallest on ties, so a grid that already fills the GPU runs unsplit and
// writes its output directly (no workspace, no combine launch). On the device
// each sequence divides its real length over the s splits, so shorter
// sequences shorten every split rather than idling most of them.
#include <cuda_runtime.h>

#include <cstdint>

#include "../../common/static_switch.h"
#include "kv_attention_kernel.cuh"
#include "kv_attention_launcher.h"

namespace slimops::cuda {
namespace {

using kv_attn::KernelArgs;
using kv_attn::kThreads;
using kv_attn::kTileN;

// What a block costs beyond its tiles (the query load and the first tile's
// latency, which nothing hides, the epilogue, its share of the combine), in
// tiles. Without it the model saw 65 one-tile splits of a 65-tile cache as
// cheaper than 4 splits of 17 tiles, and such grids ran 2x slower: that was
// the "placement effect" of s_max = L against L + 16 (NOTES, session 7).
constexpr int64_t kSplitOverheadTiles = 2;
// Blocks per SM the cost model counts as running at once. The kernel fits
// two per SM (its __launch_bounds__), yet a sweep of forced split counts
// (NOTES, session 7) was best fitted by one: a second block on an SM shares
// its bandwidth rather than adding to it, and costs its own overhead.
constexpr int64_t kSlotsPerSm = 1;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int m_tiles_of(const KvAttentionParams& p) { return int(ceil_div((p.hq / p.hkv) * p.sq, kv_attn::kRowsM)); }

int tile_keys(const KvAttentionParams& p) { return p.cache_int8 ? kv_attn::Cfg<128, true>::kTileN : kTileN; }

int choose_splits(const KvAttentionParams& p, int num_sms) {
  const int64_t tiles = ceil_div(p.s_max, tile_keys(p));
  const int64_t max_s = tiles < kv_attn::kMaxSplits ? tiles : kv_attn::kMaxSplits;
  if (p.num_splits > 0) return int(p.num_splits < max_s ? p.num_splits : (max_s > 0 ? max_s : 1));
  const int64_t blocks = p.b * p.hkv * m_tiles_of(p);
  const int64_t slots = int64_t(num_sms > 0 ? num_sms : 1) * kSlotsPerSm;
  int best = 1;
  int64_t best_cost = INT64_MAX;
  for (int64_t s = 1; s <= max_s; ++s) {
    const int64_t cost = ceil_div(blocks * s, slots) * (ceil_div(tiles, s) + kSplitOverheadTiles);
    if (cost < best_cost) {
      best_cost = cost;
      best = int(s);
    }
  }
  return best;
}

size_t align_up(size_t v) { return (v + 255) / 256 * 256; }

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

template <typename T, int kD, bool kInt8, bool kPaged>
Status launch_main(const KernelArgs& a, cudaStream_t stream) {
  using C = kv_attn::Cfg<kD, kInt8>;
  auto kernel = kv_attn::kv_attention_kernel<T, kD, kInt8, kPaged>;
  // Opting in to > 48 KB of shared memory is a per-function attribute; once per instance.
  // The carveout too: two blocks of C::kSmemBytes need most of the SM's 228 KB.
  static const bool opted_in =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes) == cudaSuccess &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, 100) == cudaSuccess;
  if (!opted_in) return Status::kCudaError;
  // x = (split * m_tiles + m tile) * hkv + kv head: kv head fastest (see the kernel).
  const dim3 grid(unsigned(int64_t(a.splits) * a.m_tiles * a.p.hkv), unsigned(a.p.b));
  kernel<<<grid, kThreads, C::kSmemBytes, stream>>>(a);
  if (cudaPeekAtLastError() != cudaSuccess) return Status::kCudaError;
  if (a.splits > 1) {
    const int64_t rows = a.p.b * a.p.hkv * a.rows;
    // Programmatic dependent launch (sm_90+): the combine grid is set up
    // while the main grid drains, and waits for it on the device
    // (griddepcontrol.wait) instead of behind a full kernel boundary; at
    // short contexts that boundary is a large share of the call.
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(unsigned(ceil_div(rows, kv_attn::kWarps)));
    cfg.blockDim = dim3(kThreads);
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = a.pdl ? 1 : 0;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    if (cudaLaunchKernelEx(&cfg, kv_attn::kv_attention_combine<T, kD>, a) != cudaSuccess) return Status::kCudaError;
  }
  return Status::kOk;
}

template <typename T>
Status dispatch(const KernelArgs& a, cudaStream_t stream) {
  const KvAttentionParams& p = a.p;
  // 2 dtypes x 2 head dims x int8-or-not x paged-or-not = 16 instances.
  return BOOL_SWITCH(p.cache_int8, kInt8, [&] {
    return BOOL_SWITCH(p.block_table != nullptr, kPaged, [&] {
      return p.d == 64 ? launch_main<T, 64, kInt8, kPaged>(a, stream) : launch_main<T, 128, kInt8, kPaged>(a, stream);
    });
  });
}

bool supported(const KvAttentionParams& p) {
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) return false;
  if (p.d != 64 && p.d != 128) return false;
  if (p.b < 1 || p.sq < 1 || p.hkv < 1 || p.hq < p.hkv || p.hq % p.hkv != 0 || p.s_max < 0) return false;
  // Grid limits, and positions / packed rows that fit an int.
  if (p.b > 65535 || p.hkv > 65535 || p.s_max > (int64_t(1) << 30) || (p.hq / p.hkv) * p.sq > (int64_t(1) << 24))
    return false;
  const int64_t cache_align = p.cache_int8 ? 16 : 8;
  const bool cache_ok = p.cache_batch_stride % cache_align == 0 && p.cache_seq_stride % cache_align == 0 &&
                        p.cache_head_stride % cache_align == 0;
  const bool other_ok = p.q_batch_stride % 8 == 0 && p.q_seq_stride % 8 == 0 && p.q_head_stride % 8 == 0 &&
                        p.out_batch_stride % 8 == 0 && p.out_seq_stride % 8 == 0 && p.out_head_stride % 8 == 0;
  const bool new_ok = p.k_new == nullptr || (p.new_batch_stride % 8 == 0 && p.new_seq_stride % 8 == 0 &&
                                              p.new_head_stride % 8 == 0 && aligned16(p.k_new) && aligned16(p.v_new));
  const bool ptr_ok = aligned16(p.q) && aligned16(p.k_cache) && aligned16(p.v_cache) && aligned16(p.out) &&
                      p.cache_seqlens != nullptr;
  const bool int8_ok = !p.cache_int8 || (p.k_scale != nullptr && p.v_scale != nullptr);
  const bool paged_ok = p.block_table == nullptr || p.block_size >= 1;
  return cache_ok && other_ok && new_ok && ptr_ok && int8_ok && paged_ok && (p.k_new == nullptr) == (p.v_new == nullptr);
}

// Whether the current device takes programmatic dependent launches (sm_90+).
bool device_has_pdl() {
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  return major >= 9;
}

KernelArgs make_args(const KvAttentionParams& p, void* workspace, int num_sms) {
  KernelArgs a;
  a.p = p;
  a.pdl = device_has_pdl();
  a.splits = choose_splits(p, num_sms);
  a.m_tiles = m_tiles_of(p);
  a.group = int(p.hq / p.hkv);
  a.rows = int(a.group * p.sq);
  const size_t out_bytes = align_up(size_t(p.b * p.hkv) * a.splits * a.rows * p.d * sizeof(float));
  a.ws_out = static_cast<float*>(workspace);
  a.ws_lse = workspace ? reinterpret_cast<float*>(static_cast<uint8_t*>(workspace) + out_bytes) : nullptr;
  return a;
}

}  // namespace

size_t kv_attention_workspace_bytes(const KvAttentionParams& p, int num_sms) {
  if (!supported(p)) return 0;
  const int splits = choose_splits(p, num_sms);
  if (splits <= 1) return 0;
  const size_t rows = size_t(p.b * p.hkv) * splits * size_t(p.hq / p.hkv) * size_t(p.sq);
  return align_up(rows * size_t(p.d) * sizeof(float)) + align_up(rows * sizeof(float));
}

Status kv_attention_cuda(const KvAttentionParams& p, void* workspace, int num_sms, cudaStream_t stream) {
  if (!supported(p)) return Status::kUnsupported;
  const KernelArgs a = make_args(p, workspace, num_sms);
  if (a.splits > 1 && (workspace == nullptr || !aligned16(workspace))) return Status::kInvalidArgument;
  if (int64_t(a.splits) * a.m_tiles * p.hkv > 0x7fffffff) return Status::kUnsupported;
  if (p.dtype == DType::kFloat16) return dispatch<__half>(a, stream);
  return dispatch<__nv_bfloat16>(a, stream);
}

}  // namespace slimops::cuda
