// Launcher of the 2:4 sparse GEMM (sparse24_launcher.h): applicability,
// format dispatch, and the 16-bit-value instances (int4 ones live in
// sparse24_int4.cu). Tiles and split-K plan: sparse24_dispatch.cuh.
#include <type_traits>

#include "../../common/static_switch.h"
#include "sparse24_dispatch.cuh"
#include "sparse24_launcher.h"

namespace slimops::cuda {
namespace s24 {

template Status run_format<__half, 16, false>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);
template Status run_format<__nv_bfloat16, 16, false>(const Sparse24Params&, void*, int, cudaStream_t, size_t*);

}  // namespace s24

namespace {

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

// dtype x bits x zero points: 6 formats, 3 M buckets each (18 kernels).
Status dispatch(const Sparse24Params& p, void* workspace, int num_sms, cudaStream_t stream, size_t* ws_bytes) {
  return BOOL_SWITCH(p.dtype == DType::kBFloat16, kBf16, [&] {
    using T = std::conditional_t<kBf16, __nv_bfloat16, __half>;
    if (p.bits == 16) return s24::run_format<T, 16, false>(p, workspace, num_sms, stream, ws_bytes);
    return BOOL_SWITCH(p.zeros != nullptr, kZeros,
                       [&] { return s24::run_format<T, 4, kZeros>(p, workspace, num_sms, stream, ws_bytes); });
  });
}

}  // namespace

bool sparse24_weight_applies(const Sparse24Params& p) {
  if (p.layout != Sparse24Layout::kCuda) return false;
  if (p.dtype != DType::kFloat16 && p.dtype != DType::kBFloat16) return false;
  if (p.bits != 16 && p.bits != 4) return false;
  if (p.n < 16 || p.k < 64 || p.n % 16 != 0 || p.k % 64 != 0) return false;
  // 32-bit k offsets in shared-memory index math.
  if (p.k >= (int64_t(1) << 31) || s24::ceil_div(p.n, 64) > 0x7fffffff) return false;
  if (p.values == nullptr || p.meta == nullptr || !aligned16(p.values) || !aligned16(p.meta)) return false;
  if (p.bits == 4) {
    if (p.scales == nullptr || p.group_size < 64 || p.group_size % 64 != 0 || p.k % p.group_size != 0) return false;
  }
  return true;
}

bool sparse24_applies(const Sparse24Params& p) {
  if (!sparse24_weight_applies(p)) return false;
  // grid.y holds token tiles.
  if (p.m < 1 || s24::ceil_div(p.m, 128) > 65535) return false;
  if (p.x == nullptr || !aligned16(p.x)) return false;
  if (p.x_row_stride < p.k || p.x_row_stride % 8 != 0 || p.out_row_stride < p.n) return false;
  return true;
}

size_t sparse24_workspace_bytes(const Sparse24Params& p, int num_sms) {
  if (!sparse24_applies(p)) return 0;
  size_t bytes = 0;
  if (dispatch(p, nullptr, num_sms, nullptr, &bytes) != Status::kOk) return 0;
  return bytes;
}

Status sparse24_gemm_cuda(const Sparse24Params& p, void* workspace, int num_sms, cudaStream_t stream) {
  if (!sparse24_applies(p)) return Status::kUnsupported;
  if (p.out == nullptr || num_sms < 1) return Status::kInvalidArgument;
  return dispatch(p, workspace, num_sms, stream, nullptr);
}

}  // namespace slimops::cuda
