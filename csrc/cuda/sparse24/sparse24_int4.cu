// int4 + 2:4 instances of the sparse GEMM (kept values int4 with float32
// group scales, optional zero points; dequantised in registers). Own
// translation unit so that it compiles in parallel with sparse24_gemm.cu.
#include "sparse24_dispatch.cuh"

namespace slimops::cuda::s24 {

template Status run_format<__half, 4, false>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
template Status run_format<__nv_bfloat16, 4, false>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
template Status run_format<__half, 4, true>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
template Status run_format<__nv_bfloat16, 4, true>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);

}  // namespace slimops::cuda::s24
