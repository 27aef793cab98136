// Entry points of the Hopper 2:4 sparse GEMM (sparse24_launcher.h) and its
// 16-bit-value instances (int4 ones live in sparse24_wgmma_int4.cu). Tiles,
// dispatch and split-K: sparse24_wgmma_launch.cuh; the kernel:
// sparse24_wgmma_kernel.cuh.
//
// Constraints (sparse24_wgmma_applies; outside them the caller takes the
// mma.sp kernel): what sparse24_applies needs, plus a compute capability 9.x
// device (the code is sm_90a), fewer than 2^31 output tiles, and for int4
// values a number of groups that is a multiple of 4 with 16-byte aligned
// scales (and zero points).
#include <type_traits>

#include "../../common/static_switch.h"
#include "sparse24_launcher.h"
#include "sparse24_wgmma_launch.cuh"

namespace slimops::cuda {
namespace s24_wgmma {

template Status wgmma_format<__half, 16, false>(const Sparse24Params&, void*, cudaStream_t, size_t*);
template Status wgmma_format<__nv_bfloat16, 16, false>(const Sparse24Params&, void*, cudaStream_t, size_t*);

}  // namespace s24_wgmma

namespace {

// dtype x bits x zero points: 6 formats, 7 tiles each (42 kernels).
Status dispatch(const Sparse24Params& p, void* workspace, cudaStream_t stream, size_t* ws_bytes) {
  return BOOL_SWITCH(p.dtype == DType::kBFloat16, kBf16, [&] {
    using T = std::conditional_t<kBf16, __nv_bfloat16, __half>;
    if (p.bits == 16) return s24_wgmma::wgmma_format<T, 16, false>(p, workspace, stream, ws_bytes);
    return BOOL_SWITCH(p.zeros != nullptr, kZeros,
                       [&] { return s24_wgmma::wgmma_format<T, 4, kZeros>(p, workspace, stream, ws_bytes); });
  });
}

}  // namespace

bool sparse24_wgmma_applies(const Sparse24Params& p) {
  if (!sparse24_applies(p)) return false;
  // One grid dimension holds all output tiles (64 tokens at least).
  if (s24::ceil_div(p.n, s24_wgmma::kBW) * s24::ceil_div(p.m, 64) > 0x7fffffff) return false;
  size_t bytes = 0;
  return dispatch(p, nullptr, nullptr, &bytes) == Status::kOk;
}

size_t sparse24_wgmma_workspace_bytes(const Sparse24Params& p) {
  size_t bytes = 0;
  if (!sparse24_wgmma_applies(p) || dispatch(p, nullptr, nullptr, &bytes) != Status::kOk) return 0;
  return bytes;
}

Status sparse24_wgmma_cuda(const Sparse24Params& p, void* workspace, cudaStream_t stream) {
  if (!sparse24_wgmma_applies(p)) return Status::kUnsupported;
  if (p.out == nullptr) return Status::kInvalidArgument;
  return dispatch(p, workspace, stream, nullptr);
}

}  // namespace slimops::cuda
