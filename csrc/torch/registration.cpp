// The op schemas of the slimops namespace. Implementations register per
// backend in their own files (wo_gemm_cpu.cpp, wo_gemm_cuda.cpp); fake
// kernels for tracing live in python/slimops/ops.py.
#include <torch/library.h>

TORCH_LIBRARY(slimops, m) {
  // y = x @ dequant(qweight)^T + bias. bits = 8: qweight int8 [N, K]
  // symmetric; scales float32 [N, K / group_size]; group_size = -1 means one
  // scale per output channel. Output has x's dtype and shape [..., N].
  m.def("wo_gemm(Tensor x, Tensor qweight, Tensor scales, Tensor? bias, int bits, int group_size) -> Tensor");
}
