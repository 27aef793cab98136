// The int4-value instances of the Hopper 2:4 sparse GEMM
// (sparse24_wgmma_launch.cuh); a translation unit of their own so that nvcc
// builds them alongside the 16-bit ones.
#include "sparse24_wgmma_launch.cuh"

namespace slimops::cuda::s24_wgmma {

template Status wgmma_format<__half, 4, false>(const Sparse24Params&, void*, cudaStream_t, size_t*);
template Status wgmma_format<__nv_bfloat16, 4, false>(const Sparse24Params&, void*, cudaStream_t, size_t*);
template Status wgmma_format<__half, 4, true>(const Sparse24Params&, void*, cudaStream_t, size_t*);
template Status wgmma_format<__nv_bfloat16, 4, true>(const Sparse24Params&, void*, cudaStream_t, size_t*);

}  // namespace slimops::cuda::s24_wgmma
