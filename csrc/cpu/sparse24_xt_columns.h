// The transposed-x 2:4 kernels (rows_xt in sparse24_avx2.cpp and
// sparse24_avx512.cpp) walk x in columns of 16 floats (one 16-row block).
// Per metadata byte (two groups of 4 dense columns), where each of the 4
// kept values' x column starts, relative to the pair's first column.
// Looked up instead of decoded: shifting, masking and scaling the 2-bit
// positions cost ~4 integer instructions per kept value, as many as the
// loads and the FMA the value needs (bench/NOTES.md, session 10).
#pragma once

#include <cstddef>
#include <cstdint>

namespace slimops::cpu {

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

}  // namespace slimops::cpu
