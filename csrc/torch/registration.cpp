// The op schemas of the slimops namespace. Implementations register per
// backend in their own files (wo_gemm_cpu.cpp, wo_gemm_cuda.cpp); fake
// kernels for tracing live in python/slimops/ops.py.
#include <torch/library.h>

TORCH_LIBRARY(slimops, m) {
  // y = x @ dequant(qweight)^T + bias, dequant(q) = (q - zeros) * scales per
  // group. bits = 8: qweight int8 [N, K]; bits = 4: uint8 [N, K / 2] packed
  // in blocks of 32 (slimops.formats.int4). scales and zeros float32
  // [N, K / group_size]; zeros None means symmetric (0 for int8, 8 for int4);
  // group_size = -1 means one group per output channel. Output has x's dtype
  // and shape [..., N].
  m.def("wo_gemm(Tensor x, Tensor qweight, Tensor scales, Tensor? zeros, Tensor? bias, int bits, int group_size) -> Tensor");
  // wo_gemm plus a low-rank correction of the quantised weight:
  // y = x @ (dequant(qweight) + lr_a @ lr_b)^T + bias, lr_a [N, r] and lr_b
  // [r, K] in x's dtype. On CUDA one kernel at small M (the correction summed
  // into the int4/int8 GEMM's split-K partials, x @ lr_b^T kept in float32).
  m.def(
      "wo_gemm_lowrank(Tensor x, Tensor qweight, Tensor scales, Tensor? zeros, Tensor? bias, Tensor lr_a, "
      "Tensor lr_b, int bits, int group_size) -> Tensor");
  // y = (x @ V^T) @ U^T + bias: x [..., K], V [r, K], U [N, r] in one float
  // dtype, bias [N]; the [M, r] intermediate stays in float32 on chip. Output
  // has x's dtype and shape [..., N].
  m.def("lowrank_linear(Tensor x, Tensor V, Tensor U, Tensor? bias) -> Tensor");
  // Decode / chunked-prefill attention over a KV cache, appending k and v
  // (when given) into the cache in place first: q [B, Sq, Hq, D]; caches
  // [B, S_max, Hkv, D] or paged [blocks, block_size, Hkv, D] with
  // block_table [B, max_blocks]; cache_seqlens [B] int32 (not advanced);
  // int8 caches carry float32 per-(position, head) scales k_scale / v_scale.
  // Causal masking is bottom-right aligned. Output [B, Sq, Hq, D] in q's dtype.
  m.def(
      "kv_attention(Tensor q, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor cache_seqlens, Tensor? k, Tensor? v, "
      "float? softmax_scale, bool causal, Tensor? block_table, Tensor(c!)? k_scale, Tensor(d!)? v_scale) -> Tensor");
  // y = x @ W^T + bias with W [N, K] 2:4 sparse, compressed: bits = 16:
  // values [N, K/2] in x's dtype; bits = 4: packed int4 kept values uint8
  // [N, K/4] with float32 scales (zeros) [N, K/group_size]; meta uint8
  // [N, K/8]. layout 0: canonical (CPU), 1: the CUDA kernel's order
  // (slimops.formats.sparse24, sparse24_cuda). Output [..., N] in x's dtype.
  m.def(
      "sparse24_gemm(Tensor x, Tensor values, Tensor meta, Tensor? scales, Tensor? zeros, Tensor? bias, int bits, "
      "int group_size, int layout) -> Tensor");
}
