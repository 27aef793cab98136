// Status codes returned by every torch-free kernel launcher.
// Kernels cannot throw across the CUDA/C boundary and must not depend on
// torch, so they report failure with a code; the bindings in csrc/torch turn
// a non-ok code into a TORCH_CHECK error that names the op.
#pragma once

namespace slimops {

enum class Status : int {
  kOk = 0,
  kInvalidArgument = 1,  // a size or pointer the launcher cannot accept
  kUnsupported = 2,      // a valid request this build has no kernel for
  kCudaError = 3,        // the CUDA runtime reported an error at launch
};

inline const char* status_string(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kInvalidArgument: return "invalid argument";
    case Status::kUnsupported: return "unsupported configuration";
    case Status::kCudaError: return "CUDA error";
  }
  return "unknown status";
}

}  // namespace slimops
