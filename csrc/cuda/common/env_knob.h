// Host: integer sweep knobs read from the environment per call, so that an
// A/B in one process can move a launcher's choice without a rebuild.
#pragma once

#include <cstdlib>

namespace slimops::cuda {

// The variable's value, or fallback when it is unset or empty.
inline int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != 0 ? std::atoi(v) : fallback;
}

}  // namespace slimops::cuda
