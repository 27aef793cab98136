// PTX wrappers the 2:4 sparse GEMM (sparse24_kernel.cuh) is built from:
// cp.async, ldmatrix, the sparse mma (mma.sp m16n8k32), packed half/bf16
// arithmetic and the int4 "magic number" unpacking. sm_80 or newer.
//
// Re-implemented here rather than shared with wo_gemm/ so that the two
// families can evolve (and be tuned) independently.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../common/ptx.cuh"
#include "../wo_gemm/mma_primitives.cuh"  // mma::Packed: the packed half/bf16 math

namespace slimops::cuda::s24 {

using ptx::and_or;
using ptx::as_u32;
using ptx::cp_async_16;
using ptx::cp_async_4;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::ldmatrix_x4;
using ptx::smem_u32;

// An L2 policy for data read once (W): its lines are the first evicted, so
// streaming W recycles its own lines instead of pushing out what else the
// L2 holds (activations, the KV cache, dirty lines whose write-back would
// then compete with W for DRAM bandwidth).
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
  uint64_t pol;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(pol));
  return pol;
}

// Only the 16-byte copies carry the policy. ptxas 13.0 miscompiles some
// cache-hinted cp.async whose shared address it splits into a register and
// a uniform register (LDGSTS [R+UR0], desc[UR1] with UR0/UR1 never written:
// an illegal instruction on H100). It did so for the 4-byte scale copies of
// the 256-thread int4 tile and for the 16-byte copies of the 16-bit tiles
// with StageLoader (bench/NOTES.md, sessions 12-13); tools/sass_undefined_ur.py
// (run by make cuda-check) finds it in the SASS. Scales are a tenth of int4
// W's bytes, so they are copied without the hint.
__device__ __forceinline__ void cp_async_16_stream(uint32_t dst, const void* src, bool valid, uint64_t pol) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint.L2::128B [%0], [%1], 16, %2, %3;\n" ::"r"(dst), "l"(src),
               "r"(valid ? 16 : 0), "l"(pol)
               : "memory");
}

// Per element type: the sparse mma, packed fma, conversions, int4 magic.
//
// mma.sp m16n8k32 (A 16 x 32 at 2:4, stored as 16 x 16 kept values): a0..a3
// hold kept values of rows (g, g+8, g, g+8), groups (t, t, t+4, t+4) of the
// 8 groups of 4 in the 32 k; b0..b3 x[token g][k = 2t + 8j, +1]; e the
// metadata, read from lanes 4g + 2*sel and 4g + 2*sel + 1 only (sel the
// sparsity selector): lane 4g + 2sel + c holds, for k 16c .. 16c + 15 of
// the step, row g's four 4-bit group fields in bits 0-15 and row g + 8's in
// bits 16-31. Two consecutive k32 steps thus share one metadata register,
// steps 0 and 1 selecting 0 and 1. ::ordered_metadata: our fields always
// have i0 < i1 (the canonical format guarantees it), which is what sm_90
// runs at full speed.
template <typename T> struct Ops;

#define SLIMOPS_S24_MMA_SP(TYPE, SEL)                                                                          \
  asm volatile("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32." TYPE "." TYPE                     \
               ".f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9, %10, %11}, {%0, %1, %2, %3}, %12, " SEL ";\n" \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                              \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]),     \
                 "r"(e))

template <>
struct Ops<__half> : mma::Packed<__half> {  // fma, splat, pack, from_float
  template <int kSel>
  __device__ static __forceinline__ void mma_sp(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4],
                                                uint32_t e) {
    static_assert(kSel == 0 || kSel == 1, "m16n8k32 16-bit selectors");
    if constexpr (kSel == 0)
      SLIMOPS_S24_MMA_SP("f16", "0x0");
    else
      SLIMOPS_S24_MMA_SP("f16", "0x1");
  }
  __device__ static __forceinline__ float lo(uint32_t v) { return __low2float(*reinterpret_cast<__half2*>(&v)); }
  __device__ static __forceinline__ float hi(uint32_t v) { return __high2float(*reinterpret_cast<__half2*>(&v)); }
  static constexpr uint32_t kOnes = 0x3C003C00u;
  // Magic 64: a nibble ORed into mantissa bits 4-7 reads as 64 + q.
  static constexpr float kMagic = 64.f;
  __device__ static __forceinline__ void raw_int4(uint32_t w, uint32_t (&r)[4]) {
    const uint32_t p01 = __byte_perm(w, 0u, 0x4140u), p23 = __byte_perm(w, 0u, 0x4342u);
    r[0] = and_or(p01 << 4, 0x00F000F0u, 0x54005400u);
    r[1] = and_or(p23 << 4, 0x00F000F0u, 0x54005400u);
    r[2] = and_or(p01, 0x00F000F0u, 0x54005400u);
    r[3] = and_or(p23, 0x00F000F0u, 0x54005400u);
  }
};

template <>
struct Ops<__nv_bfloat16> : mma::Packed<__nv_bfloat16> {  // fma, splat, pack, from_float
  template <int kSel>
  __device__ static __forceinline__ void mma_sp(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4],
                                                uint32_t e) {
    static_assert(kSel == 0 || kSel == 1, "m16n8k32 16-bit selectors");
    if constexpr (kSel == 0)
      SLIMOPS_S24_MMA_SP("bf16", "0x0");
    else
      SLIMOPS_S24_MMA_SP("bf16", "0x1");
  }
  // bf16 -> f32 is a shift: exact and one instruction.
  __device__ static __forceinline__ float lo(uint32_t v) { return __uint_as_float(v << 16); }
  __device__ static __forceinline__ float hi(uint32_t v) { return __uint_as_float(v & 0xFFFF0000u); }
  static constexpr uint32_t kOnes = 0x3F803F80u;
  // Magic 128: a nibble ORed into mantissa bits 0-3 reads as 128 + q.
  static constexpr float kMagic = 128.f;
  __device__ static __forceinline__ void raw_int4(uint32_t w, uint32_t (&r)[4]) {
    const uint32_t p01 = __byte_perm(w, 0u, 0x4140u), p23 = __byte_perm(w, 0u, 0x4342u);
    r[0] = and_or(p01, 0x000F000Fu, 0x43004300u);
    r[1] = and_or(p23, 0x000F000Fu, 0x43004300u);
    r[2] = and_or(p01 >> 4, 0x000F000Fu, 0x43004300u);
    r[3] = and_or(p23 >> 4, 0x000F000Fu, 0x43004300u);
  }
};

#undef SLIMOPS_S24_MMA_SP

// Scales of the two W rows a lane's A registers hold (rows g and g + 8 of a
// 16-row tile) for one group: s, and c = -(M + z) s where zero points are
// given (M the magic offset raw_int4 leaves in each value).
struct RowPairScales {
  float s_lo, s_hi, c_lo, c_hi;
};

template <typename T, bool kZeros>
__device__ __forceinline__ RowPairScales row_pair_scales(float s_lo, float s_hi, float z_lo, float z_hi) {
  using O = Ops<T>;
  if constexpr (kZeros) return {s_lo, s_hi, -(O::kMagic + z_lo) * s_lo, -(O::kMagic + z_hi) * s_hi};
  return {s_lo, s_hi, 0.f, 0.f};
}

// One k32 step of int4 kept values (a lane's 32-bit word, formats/sparse24_cuda.py)
// into the four A registers of mma.sp / wgmma.sp: registers 0, 2 hold row g,
// 1, 3 row g + 8.
template <typename T, bool kZeros>
__device__ __forceinline__ void dequant_int4_step(uint32_t word, const RowPairScales& sc, uint32_t (&a)[4]) {
  using O = Ops<T>;
  O::raw_int4(word, a);
  if constexpr (!kZeros) {
    // ((M + q) - (M + 8)) s: the difference is exact, the product rounded once.
    const uint32_t zc = O::splat(-(O::kMagic + 8.f));
    const uint32_t s2_lo = O::splat(sc.s_lo), s2_hi = O::splat(sc.s_hi);
#pragma unroll
    for (int r = 0; r < 4; ++r) a[r] = O::fma(O::fma(a[r], O::kOnes, zc), (r & 1) ? s2_hi : s2_lo, 0u);
  } else {
    // Zero points may be fractional (imported checkpoints): float32
    // (M + q) s - (M + z) s, rounded once.
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const float sr = (r & 1) ? sc.s_hi : sc.s_lo, cr = (r & 1) ? sc.c_hi : sc.c_lo;
      const uint32_t v = a[r];
      a[r] = O::pack(fmaf(O::lo(v), sr, cr), fmaf(O::hi(v), sr, cr));
    }
  }
}

// One k32 step of int4 kept values as the exact integers q - 8 (no zero
// points): for kernels that apply the row scales to the fp32 accumulators
// after the mma instead of to every weight before it.
template <typename T>
__device__ __forceinline__ void unscaled_int4_step(uint32_t word, uint32_t (&a)[4]) {
  using O = Ops<T>;
  O::raw_int4(word, a);
  const uint32_t zc = O::splat(-(O::kMagic + 8.f));
#pragma unroll
  for (int r = 0; r < 4; ++r) a[r] = O::fma(a[r], O::kOnes, zc);
}

}  // namespace slimops::cuda::s24
