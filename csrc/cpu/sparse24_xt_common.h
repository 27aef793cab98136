// What the transposed-x 2:4 kernels (rows_xt in sparse24_avx2.cpp and
// sparse24_avx512.cpp; both compiled with AVX2 or more) share: where each kept
// value's x column lies, and the kept values as float32. They walk x in
// columns of 16 floats (one 16-row block).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "avx2_helpers.h"
#if defined(__AVX512F__)
#include "avx512_helpers.h"
#endif
#include "bf16_convert.h"
#include "sparse24_cpu.h"

namespace slimops::cpu {
// Internal linkage on purpose: each includer is compiled for its own ISA, and
// one shared inline copy (the linker keeps any one) could carry AVX-512
// instructions into the AVX2 path.
namespace {

// Per metadata byte (two groups of 4 dense columns), where each of the 4
// kept values' x column starts, relative to the pair's first column. Looked
// up instead of decoded: shifting, masking and scaling the 2-bit positions
// cost ~4 integer instructions per kept value, as many as the loads and the
// FMA the value needs (bench/NOTES.md, session 10).
struct XtColumnTable {
  // Byte t of packed[byte]: where kept value t's x column starts, in units
  // of 8 bytes (an addressing-mode scale), so one 32-bit load serves the
  // byte's 4 values.
  uint32_t packed[256];
  XtColumnTable() {
    for (int byte = 0; byte < 256; ++byte) {
      packed[byte] = 0;
      for (int t = 0; t < 4; ++t) {
        const uint32_t column = 4 * (t / 2) + ((byte >> (2 * t)) & 3);
        packed[byte] |= (column * 16 * sizeof(float) / 8) << (8 * t);
      }
    }
  }
  // Bytes from the pair's first x column to kept value t's column.
  static size_t offset_bytes(uint32_t packed_entry, int t) { return 8 * size_t((packed_entry >> (8 * t)) & 0xFFu); }
};

inline const XtColumnTable& xt_column_table() {
  static const XtColumnTable table;
  return table;
}

// `count` kept values from index vi as float32: the values themselves, or
// for bf16 widened into buf (64-byte aligned), so the FMAs broadcast each
// straight from memory: a scalar widening per value cost as much as the
// FMAs it fed, and a permute per value from a register competes with the
// FMAs for the same port.
template <DType kDt>
inline const float* kept_values_f32(const Sparse24Params& p, int64_t vi, int64_t count, float* buf) {
  if constexpr (kDt == DType::kFloat32) {
    return static_cast<const float*>(p.values) + vi;
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(p.values) + vi;
    int64_t i = 0;
#if defined(__AVX512F__)
    // 16 at a time where this copy is compiled for AVX-512 (4% on bf16 M = 16).
    for (; i + 16 <= count; i += 16) _mm512_store_ps(buf + i, avx512::load_bf16x16_as_f32(src + i));
#endif
    for (; i + 8 <= count; i += 8) _mm256_store_ps(buf + i, avx2::load_bf16x8_as_f32(src + i));
    for (; i < count; ++i) buf[i] = bf16_to_f32(src[i]);
    return buf;
  }
}

}  // namespace
}  // namespace slimops::cpu
