// Quantised weight words -> mma.sync operand registers, for the layouts of
// common/wo_gemm_params.h.
//
// The fragment contract (shared with wo_gemm_mma.cu): weights are the mma's
// A operand, x its B operand. A lane holds one 32-bit word of a weight row,
// bytes 4t .. 4t+3 of a 16-byte chunk, t = lane % 4 (ldmatrix delivers
// exactly this from raw weight rows in shared memory). mma.sync sums over k
// in any order as long as A and B agree, so inside each 16-wide k step the
// fragment's k indices (2t, 2t+1 | 2t+8, 2t+9) stand for the physical k
// (4t, 4t+1 | 4t+2, 4t+3): a row's A registers are the weight pairs
// (4t, 4t+1) and (4t+2, 4t+3), and B's two registers are one 8-byte load of
// x[row][4t .. 4t+3].
//   int8: the word is k = 4t .. 4t+3 of a 16-wide step.
//   int4: byte i holds k = 4t+i (low nibble) and 16+4t+i (high nibble) of
//         a 32-weight block: one word feeds two k steps.
//
// Values become floats without integer->float conversions: a small integer
// q OR-ed into the mantissa of a "magic" power of two M reads as M + q
// (raw_int4 / raw_int8). From there the kernel either feeds M + q to the
// mma and applies scale and zero point per group in float32, or scales each
// weight pair with two packed fmas (scale_raw): (M + q) - (M + z_i), exact
// for an integer z_i, then times s, rounded once.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "mma_primitives.cuh"

namespace slimops::cuda::mma {

// Packed constants, both halves equal.
constexpr uint32_t kHalfOne = 0x3C003C00u;         // 1.0
constexpr uint32_t kBf16One = 0x3F803F80u;         // 1.0
constexpr uint32_t kBf16Magic = 0x43004300u;       // 128: q in mantissa bits 0-6

// Byte selectors for prmt: bytes (0, 1) or (2, 3) of the word to bytes 0 and
// 2 of the result, so each 16-bit half receives one weight's byte.
constexpr uint32_t kBytes01 = 0x4140u;
constexpr uint32_t kBytes23 = 0x4342u;

// ---- Raw values M + q, exact, one lop3 (or prmt) per pair. Fed to the mma
// as they are where a whole pipeline stage shares one group per weight row,
// since per group  sum (q - z) s x = s (sum (M + q) x - (M + z) sum x):  the
// kernel gets sum x from one more mma against a fragment of ones and applies
// s and (M + z) once per group in float32. M per format:
template <typename T, int kBits>
constexpr float kRawOffset = kBits == 4 ? (std::is_same_v<T, __half> ? 64.f : 128.f)
                                        : (std::is_same_v<T, __half> ? 1152.f : 0.f);
template <typename T>
constexpr uint32_t kOnes = std::is_same_v<T, __half> ? kHalfOne : kBf16One;

constexpr uint32_t kHalfMagic64 = 0x54005400u;  // 64: q in mantissa bits 4-7

// int4 word -> M + q: b[0], b[1] the pairs (4t, 4t+1), (4t+2, 4t+3) of the
// block's first 16 weights (low nibbles), b[2], b[3] of its last 16.
template <typename T>
__device__ __forceinline__ void raw_int4(uint32_t w, uint32_t (&b)[4]) {
  const uint32_t p01 = __byte_perm(w, 0u, kBytes01);
  const uint32_t p23 = __byte_perm(w, 0u, kBytes23);
  if constexpr (std::is_same_v<T, __half>) {
    // Magic 64 takes a nibble at bits 4-7: the high one in place, the low one
    // shifted up. (M = 64 rather than 1024 also keeps the float32 correction
    // (M + z) sum x small next to the result.)
    b[0] = and_or(p01 << 4, 0x00F000F0u, kHalfMagic64);
    b[1] = and_or(p23 << 4, 0x00F000F0u, kHalfMagic64);
    b[2] = and_or(p01, 0x00F000F0u, kHalfMagic64);
    b[3] = and_or(p23, 0x00F000F0u, kHalfMagic64);
  } else {
    b[0] = and_or(p01, 0x000F000Fu, kBf16Magic);
    b[1] = and_or(p23, 0x000F000Fu, kBf16Magic);
    b[2] = and_or(p01 >> 4, 0x000F000Fu, kBf16Magic);
    b[3] = and_or(p23 >> 4, 0x000F000Fu, kBf16Magic);
  }
}

// raw_int4 of a word whose bytes come interleaved, (0, 2, 1, 3) of the
// plain order: each pair's two nibbles then sit 16 bits apart, so a shift
// and a lop3 make a pair (no byte permutes). b[] as raw_int4's.
template <typename T>
__device__ __forceinline__ void raw_int4_interleaved(uint32_t w, uint32_t (&b)[4]) {
  if constexpr (std::is_same_v<T, __half>) {
    b[0] = and_or(w << 4, 0x00F000F0u, kHalfMagic64);
    b[1] = and_or(w >> 4, 0x00F000F0u, kHalfMagic64);
    b[2] = and_or(w, 0x00F000F0u, kHalfMagic64);
    b[3] = and_or(w >> 8, 0x00F000F0u, kHalfMagic64);
  } else {
    b[0] = and_or(w, 0x000F000Fu, kBf16Magic);
    b[1] = and_or(w >> 8, 0x000F000Fu, kBf16Magic);
    b[2] = and_or(w >> 4, 0x000F000Fu, kBf16Magic);
    b[3] = and_or(w >> 12, 0x000F000Fu, kBf16Magic);
  }
}

// int8 word -> M + q, pairs (4t, 4t+1) and (4t+2, 4t+3) (M = 0 for bf16:
// 128 + 255 does not fit its 8 significant bits, so q comes exact through
// float32's magic 2^23 and is packed).
template <typename T>
__device__ __forceinline__ void raw_int8(uint32_t w, uint32_t (&b)[2]) {
  const uint32_t u = w ^ 0x80808080u;
  if constexpr (std::is_same_v<T, __half>) {
    b[0] = __byte_perm(u, 0x64646464u, kBytes01);
    b[1] = __byte_perm(u, 0x64646464u, kBytes23);
  } else {
    using P = Packed<T>;
    // Byte i in the low mantissa bits, 0x4B in the top byte: 2^23 + (q + 128).
    const float q0 = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7440u)) - 8388736.f;
    const float q1 = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7441u)) - 8388736.f;
    const float q2 = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7442u)) - 8388736.f;
    const float q3 = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7443u)) - 8388736.f;
    b[0] = P::pack(q0, q1);
    b[1] = P::pack(q2, q3);
  }
}

// A raw pair scaled: ((M + q) - (M + z_i)) s, with zc2 = -(M + z_i) and
// s2 = s as packed pairs. The difference is an exact small integer, so the
// only rounding is the final product's, relative to (q - z_i) s.
template <typename T>
__device__ __forceinline__ uint32_t scale_raw(uint32_t v, uint32_t zc2, uint32_t s2) {
  using P = Packed<T>;
  return P::fma(P::fma(v, kOnes<T>, zc2), s2, 0u);
}

}  // namespace slimops::cuda::mma
