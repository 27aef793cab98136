// Split-K arrival counters that need no memset before a launch.
//
// Split-K blocks that share an output tile each write their fp32 partials,
// then count themselves in on the tile's counter; the last to arrive sums the
// partials. Zeroing the counters first is a second launch per GEMM. Instead
// a counter word holds this launch's tag (a 56-bit value unique per launch)
// in its high bits and the arrivals in its low 8: a word holding any other
// tag, leftover bytes of the caching allocator included, reads as 0
// arrivals. (Used by sparse24; wo_gemm keeps a memset and one atomic add per
// arrival, which measured faster: bench/NOTES.md, session 6.)
//
// The last block also puts the word back to 0. A CUDA graph replays a launch
// with the tag it was captured with, on the same workspace: without the
// reset, the second replay would find the first one's full count under its
// own tag and no block would ever be last.
#pragma once

#include <atomic>
#include <cstdint>

namespace slimops::cuda::split_k {

// Host: the next launch's tag. A process-wide sequence number through a
// bijective mixer (splitmix64), so that leftover workspace contents (small
// integers, floats, older tags) match it with probability ~2^-56; the low 8
// bits are left for the arrivals.
inline uint64_t next_launch_tag() {
  static std::atomic<uint64_t> seq{0};
  uint64_t z = seq.fetch_add(1, std::memory_order_relaxed) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z & ~uint64_t(0xFF);
}

// Arrivals count in the low 8 bits: at most 255 splits.
constexpr int kMaxArrivals = 255;

#ifdef __CUDACC__
__device__ __forceinline__ uint64_t atomic_cas_acq_rel(uint64_t* addr, uint64_t cmp, uint64_t val) {
  uint64_t old;
  asm volatile("atom.cas.acq_rel.gpu.b64 %0, [%1], %2, %3;\n" : "=l"(old) : "l"(addr), "l"(cmp), "l"(val) : "memory");
  return old;
}

__device__ __forceinline__ uint64_t load_relaxed(const uint64_t* addr) {
  uint64_t v;
  asm volatile("ld.relaxed.gpu.global.b64 %0, [%1];\n" : "=l"(v) : "l"(addr) : "memory");
  return v;
}

// One block's arrival (call from one thread, after a barrier that orders the
// block's partials before it): true for the last of `splits`, which then
// sees every other block's partials (acquire-release) and has put the word
// back to 0 for the next launch on this workspace.
__device__ __forceinline__ bool arrive(uint64_t* counter, uint64_t tag, int splits) {
  uint64_t seen = load_relaxed(counter), want;
  for (;;) {
    want = (seen & ~uint64_t(0xFF)) == tag ? seen + 1 : tag + 1;
    const uint64_t got = atomic_cas_acq_rel(counter, seen, want);
    if (got == seen) break;
    seen = got;
  }
  const bool last = int(want & 0xFF) == splits;
  // Nobody else touches the word in this launch once all have arrived.
  if (last) *counter = 0;
  return last;
}
#endif

}  // namespace slimops::cuda::split_k
