#include "split_k_counters.h"

#include <ATen/ATen.h>

#include <map>
#include <mutex>
#include <utility>

namespace slimops {
namespace {

// Counters per buffer: one per output tile of a launch (tiles of 128 output
// columns by up to 256 rows of x); a launch with more zeroes its own.
constexpr int64_t kCounters = int64_t(1) << 16;

}  // namespace

cuda::SplitKCounters zeroed_split_k_counters(const c10::Device& device, cudaStream_t stream) {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  if (capture != cudaStreamCaptureStatusNone) return {};
  static std::mutex mutex;
  // Never destroyed: freeing CUDA memory from a static destructor at exit
  // can outlive the CUDA context.
  static auto* buffers = new std::map<std::pair<c10::DeviceIndex, cudaStream_t>, at::Tensor>();
  const std::lock_guard<std::mutex> lock(mutex);
  at::Tensor& buffer = (*buffers)[{device.index(), stream}];
  // Zeroed on the caller's current stream, which is `stream`: ordered before
  // the launch that uses it.
  if (!buffer.defined()) buffer = at::zeros({kCounters}, at::TensorOptions().dtype(at::kInt).device(device));
  return {buffer.data_ptr<int>(), size_t(kCounters)};
}

}  // namespace slimops
