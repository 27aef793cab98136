// ctypes shim over the torch-free KV attention launcher, for
// tools/harness/kv_attention_harness.py: tests and timings on a GPU without
// building the extension. Integer fields and pointers travel as two flat
// arrays (order below) so the Python side needs no struct mirror.
#include <cstdint>

#include "../../csrc/cuda/kv_attention/kv_attention_launcher.h"

namespace {

// iv: q_bs q_ss q_hs | cache_bs cache_ss cache_hs | scale_bs scale_ss | new_bs new_ss new_hs |
//     bt_bs block_size | out_bs out_ss out_hs | b sq hq hkv d s_max | causal dtype(1 f16, 2 bf16) int8 |
//     num_splits (0: the launcher's choice)
// ptrs: q k_cache v_cache k_scale v_scale k_new v_new cache_seqlens block_table out
slimops::KvAttentionParams fill(const int64_t* iv, void* const* ptrs, float scale) {
  slimops::KvAttentionParams p;
  p.q = ptrs[0];
  p.q_batch_stride = iv[0], p.q_seq_stride = iv[1], p.q_head_stride = iv[2];
  p.k_cache = ptrs[1], p.v_cache = ptrs[2];
  p.cache_batch_stride = iv[3], p.cache_seq_stride = iv[4], p.cache_head_stride = iv[5];
  p.k_scale = static_cast<float*>(ptrs[3]), p.v_scale = static_cast<float*>(ptrs[4]);
  p.scale_batch_stride = iv[6], p.scale_seq_stride = iv[7];
  p.k_new = ptrs[5], p.v_new = ptrs[6];
  p.new_batch_stride = iv[8], p.new_seq_stride = iv[9], p.new_head_stride = iv[10];
  p.cache_seqlens = static_cast<const int32_t*>(ptrs[7]);
  p.block_table = static_cast<const int32_t*>(ptrs[8]);
  p.block_table_batch_stride = iv[11], p.block_size = iv[12];
  p.out = ptrs[9];
  p.out_batch_stride = iv[13], p.out_seq_stride = iv[14], p.out_head_stride = iv[15];
  p.b = iv[16], p.sq = iv[17], p.hq = iv[18], p.hkv = iv[19], p.d = iv[20], p.s_max = iv[21];
  p.causal = iv[22] != 0;
  p.dtype = iv[23] == 1 ? slimops::DType::kFloat16 : slimops::DType::kBFloat16;
  p.cache_int8 = iv[24] != 0;
  p.num_splits = int(iv[25]);
  p.softmax_scale = scale;
  return p;
}

}  // namespace

extern "C" int64_t kv_shim_workspace_bytes(const int64_t* iv, void* const* ptrs, float scale, int num_sms) {
  return int64_t(slimops::cuda::kv_attention_workspace_bytes(fill(iv, ptrs, scale), num_sms));
}

extern "C" int kv_shim_run(const int64_t* iv, void* const* ptrs, float scale, void* workspace, int num_sms,
                           void* stream) {
  return int(slimops::cuda::kv_attention_cuda(fill(iv, ptrs, scale), workspace, num_sms,
                                              static_cast<cudaStream_t>(stream)));
}
