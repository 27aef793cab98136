// C ABI over the 2:4 sparse GEMM launcher for tools/harness/sparse24_harness.py
// (ctypes): raw device pointers and sizes in, a status code out. Built with
// the kernels into a shared library, outside the extension:
//   nvcc -shared -Xcompiler -fPIC -Xcompiler -fno-gnu-unique -std=c++17 -O3 -Icsrc --expt-relaxed-constexpr \
//     -gencode arch=compute_90a,code=sm_90a csrc/cuda/sparse24/*.cu \
//     tools/harness/sparse24_shim.cu -o libsparse24.so
// (csrc/cuda/sparse24/*.cu includes sparse24_decompress.cu.)
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/sparse24/sparse24_launcher.h"

namespace {

slimops::Sparse24Params make(const void* x, const void* values, const uint8_t* meta, const float* scales,
                             const float* zeros, const float* bias, void* out, int64_t m, int64_t n, int64_t k,
                             int64_t x_row_stride, int64_t out_row_stride, int bits, int64_t group_size,
                             int dtype) {
  slimops::Sparse24Params p;
  p.x = x;
  p.values = values;
  p.meta = meta;
  p.scales = scales;
  p.zeros = zeros;
  p.bias = bias;
  p.out = out;
  p.m = m;
  p.n = n;
  p.k = k;
  p.x_row_stride = x_row_stride;
  p.out_row_stride = out_row_stride;
  p.bits = bits;
  p.group_size = group_size;
  p.dtype = static_cast<slimops::DType>(dtype);
  p.layout = slimops::Sparse24Layout::kCuda;
  return p;
}

}  // namespace

extern "C" {

// dtype: 1 fp16, 2 bf16 (slimops::DType).
size_t s24_workspace_bytes(const void* x, const void* values, const uint8_t* meta, const float* scales,
                           const float* zeros, const float* bias, void* out, int64_t m, int64_t n, int64_t k,
                           int64_t x_row_stride, int64_t out_row_stride, int bits, int64_t group_size, int dtype,
                           int num_sms) {
  return slimops::cuda::sparse24_workspace_bytes(
      make(x, values, meta, scales, zeros, bias, out, m, n, k, x_row_stride, out_row_stride, bits, group_size, dtype),
      num_sms);
}

int s24_gemm(const void* x, const void* values, const uint8_t* meta, const float* scales, const float* zeros,
             const float* bias, void* out, int64_t m, int64_t n, int64_t k, int64_t x_row_stride,
             int64_t out_row_stride, int bits, int64_t group_size, int dtype, void* workspace, int num_sms,
             void* stream) {
  return static_cast<int>(slimops::cuda::sparse24_gemm_cuda(
      make(x, values, meta, scales, zeros, bias, out, m, n, k, x_row_stride, out_row_stride, bits, group_size, dtype),
      workspace, num_sms, static_cast<cudaStream_t>(stream)));
}

int s24_decompress(const void* values, const uint8_t* meta, const float* scales, const float* zeros, void* dense,
                   int64_t n, int64_t k, int bits, int64_t group_size, int dtype, void* stream) {
  return static_cast<int>(slimops::cuda::sparse24_decompress_cuda(
      make(nullptr, values, meta, scales, zeros, nullptr, nullptr, 0, n, k, 0, 0, bits, group_size, dtype), dense,
      static_cast<cudaStream_t>(stream)));
}

long long s24_dense_from_m() { return static_cast<long long>(slimops::cuda::kSparse24DenseFromM); }

}  // extern "C"
