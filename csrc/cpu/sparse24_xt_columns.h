// The transposed-x 2:4 kernels (rows_xt in sparse24_avx2.cpp and
// sparse24_avx512.cpp) walk x in columns of 16 floats (one 16-row block).
// Per metadata byte (two groups of 4 dense columns), where each of the 4
// kept values' x column starts, in floats from the pair's first column.
// Looked up instead of decoded: shifting, masking and scaling the 2-bit
// positions cost ~4 integer instructions per kept value, as many as the
// loads and the FMA the value needs (bench/NOTES.md, session 10).
#pragma once

#include <cstdint>

namespace slimops::cpu {

struct XtColumnTable {
  alignas(16) int32_t offset[256][4];
  XtColumnTable() {
    for (int byte = 0; byte < 256; ++byte)
      for (int t = 0; t < 4; ++t) offset[byte][t] = 16 * (4 * (t / 2) + ((byte >> (2 * t)) & 3));
  }
};

inline const XtColumnTable& xt_column_table() {
  static const XtColumnTable table;
  return table;
}

}  // namespace slimops::cpu
