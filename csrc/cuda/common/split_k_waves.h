// Host: the split-K count that finishes a grid in the fewest waves, shared by
// the tensor-core GEMM launchers (wo_gemm, sparse24) once their output tiles
// fill a wave of resident blocks.
#pragma once

#include <cstdint>
#include <limits>

namespace slimops::cuda {

// Among 1..max_splits, the count that minimises waves x (stages per split +
// a block's fixed cost + the reduction's share): `tiles` output tiles of
// `iters` stages each on `slots` resident blocks, every block costing
// block_cost_iters (filling its pipeline, storing its tile), a split past
// the first costing reduce_cost_iters.
inline int fewest_waves_splits(int64_t tiles, int64_t slots, int iters, int max_splits, int reduce_cost_iters,
                               int block_cost_iters = 0) {
  const auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
  int splits = 1;
  int64_t best = std::numeric_limits<int64_t>::max();
  for (int s = 1; s <= max_splits; ++s) {
    const int64_t cost =
        ceil_div(tiles * s, slots) * (ceil_div(iters, s) + block_cost_iters + (s > 1 ? reduce_cost_iters : 0));
    if (cost < best) {
      best = cost;
      splits = s;
    }
  }
  return splits;
}

}  // namespace slimops::cuda
