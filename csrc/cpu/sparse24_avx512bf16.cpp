// AVX-512 BF16 2:4 sparse matmul for bfloat16 x and kept values at M >= 8.
//
// A group of four columns keeps two values (v0, v1) at positions a < b. In
// bfloat16 the pair is one 32-bit word, and vdpbf16ps multiplies 16 such
// pairs by 16 others and adds both products into 16 float lanes. So if, for
// 16 rows of x, the pairs (x[row][4g + a], x[row][4g + b]) sit in one zmm,
// a whole group (two kept values, 16 rows) is one broadcast of (v0, v1) and
// one vdpbf16ps: no index arithmetic per kept value, no widening, half the
// instructions of the float path (sparse24_avx512.cpp, rows_xt), which is
// bound by exactly those.
//
// The pairs come from a table built once per call (build_pairs): per block
// of 16 rows of x and per group, the 6 position pairs a < b a group can
// keep, 64 bytes each. The metadata nibble (a | b << 2) picks one through a
// 16-entry table; nibbles with a >= b (not the canonical layout) make the
// kernel return kUnsupported before it writes anything of that row, and the
// binding takes the float path instead.
//
// Exact: bfloat16 x and values multiply exactly in vdpbf16ps, sums in fp32.
#include "sparse24_cpu.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace slimops::cpu {
namespace {

constexpr int kPairs = 6;  // position pairs a < b of a group of four
constexpr int kPairA[kPairs] = {0, 0, 0, 1, 1, 2};
constexpr int kPairB[kPairs] = {1, 2, 3, 2, 3, 3};

// Metadata nibble (a | b << 2) -> its pair index, or -1 if a >= b.
struct PairIndexTable {
  int8_t index[16];
  PairIndexTable() {
    for (int nib = 0; nib < 16; ++nib) index[nib] = -1;
    for (int i = 0; i < kPairs; ++i) index[kPairA[i] | (kPairB[i] << 2)] = static_cast<int8_t>(i);
  }
};

const PairIndexTable& pair_index_table() {
  static const PairIndexTable table;
  return table;
}

// Columns of x one tile covers: 64 groups x 6 pairs x 64 bytes = 24 KiB of
// pairs, which stays in L1 while a block of output rows sweeps it.
constexpr int64_t kTileGroups = 64;
constexpr int64_t kBlockRows = 8;

// acc += (v0, v1) of group g . the 16 rows' x pair at its kept positions.
inline __m512 group_step(__m512 acc, const uint8_t* meta, const uint16_t* v, const uint32_t* xb, int64_t g,
                         const PairIndexTable& table) {
  const unsigned byte = meta[g / 2];
  const int pair = table.index[(g & 1) ? byte >> 4 : byte & 0xF];
  uint32_t w;
  std::memcpy(&w, v + 2 * g, sizeof(w));
  const __m512i xv = _mm512_loadu_si512(xb + (g * kPairs + pair) * 16);
  return _mm512_dpbf16_ps(acc, (__m512bh)_mm512_set1_epi32(static_cast<int>(w)), (__m512bh)xv);
}

}  // namespace

bool sparse24_pairs_kernel_built() { return true; }

void sparse24_build_pairs(const Sparse24Params& p, const uint16_t* x, uint32_t* pairs, int64_t g0, int64_t g1) {
  const int64_t groups = p.k / 4, mblocks = (p.m + 15) / 16;
  for (int64_t mb = 0; mb < mblocks; ++mb) {
    for (int64_t g = g0; g < g1; ++g) {
      uint32_t* dst = pairs + (mb * groups + g) * kPairs * 16;
      for (int i = 0; i < kPairs; ++i) {
        for (int r = 0; r < 16; ++r) {
          const int64_t row = mb * 16 + r;
          uint32_t word = 0;
          if (row < p.m) {
            const uint16_t* xr = x + row * p.x_row_stride + 4 * g;
            word = uint32_t(xr[kPairA[i]]) | (uint32_t(xr[kPairB[i]]) << 16);
          }
          dst[i * 16 + r] = word;
        }
      }
    }
  }
}

Status sparse24_rows_pairs_avx512bf16(const Sparse24Params& p, const uint32_t* pairs, int64_t n0, int64_t n1) {
  const Status st = check_sparse24_cpu_params(p, n0, n1);
  if (st != Status::kOk) return st;
  if (p.dtype != DType::kBFloat16 || p.k % 8 != 0) return Status::kUnsupported;
  const PairIndexTable& table = pair_index_table();
  const int64_t groups = p.k / 4, half = p.k / 2, mblocks = (p.m + 15) / 16;
  // Every row's metadata first: nothing is written for a layout this kernel
  // does not read.
  for (int64_t n = n0; n < n1; ++n) {
    const uint8_t* meta = p.meta + n * (p.k / 8);
    for (int64_t j = 0; j < p.k / 8; ++j)
      if ((table.index[meta[j] & 0xF] | table.index[meta[j] >> 4]) < 0) return Status::kUnsupported;
  }
  float* out = static_cast<float*>(p.out);
  const uint16_t* values = static_cast<const uint16_t*>(p.values);  // (v0, v1) of group g: elements 2g, 2g + 1
  for (int64_t mb = 0; mb < mblocks; ++mb) {
    const uint32_t* xb = pairs + mb * groups * kPairs * 16;
    const int64_t mrows = std::min<int64_t>(16, p.m - mb * 16);
    for (int64_t nb = n0; nb < n1; nb += kBlockRows) {
      const int64_t nrows = std::min(kBlockRows, n1 - nb);
      __m512 total[kBlockRows];
      for (auto& t : total) t = _mm512_setzero_ps();
      for (int64_t t0 = 0; t0 < groups; t0 += kTileGroups) {
        const int64_t t1 = std::min(groups, t0 + kTileGroups);
        for (int64_t r = 0; r < nrows; ++r) {
          const int64_t n = nb + r;
          const uint8_t* meta = p.meta + n * (p.k / 8);
          const uint16_t* v = values + n * half;
          // Four chains: vdpbf16ps has a latency of several cycles.
          __m512 acc[4];
          for (auto& a : acc) a = _mm512_setzero_ps();
          const int64_t t4 = t0 + (t1 - t0) / 4 * 4;
          for (int64_t g = t0; g < t4; g += 4)
            for (int u = 0; u < 4; ++u) acc[u] = group_step(acc[u], meta, v, xb, g + u, table);
          for (int64_t g = t4; g < t1; ++g) acc[0] = group_step(acc[0], meta, v, xb, g, table);
          total[r] = _mm512_add_ps(total[r], _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
        }
      }
      for (int64_t r = 0; r < nrows; ++r) {
        alignas(64) float sums[16];
        _mm512_store_ps(sums, total[r]);
        const float bias = p.bias ? p.bias[nb + r] : 0.f;
        for (int64_t i = 0; i < mrows; ++i) out[(mb * 16 + i) * p.out_row_stride + nb + r] = sums[i] + bias;
      }
    }
  }
  return Status::kOk;
}

}  // namespace slimops::cpu

#else  // the compiler cannot build AVX-512 BF16: never selected

namespace slimops::cpu {
bool sparse24_pairs_kernel_built() { return false; }
void sparse24_build_pairs(const Sparse24Params&, const uint16_t*, uint32_t*, int64_t, int64_t) {}
Status sparse24_rows_pairs_avx512bf16(const Sparse24Params&, const uint32_t*, int64_t, int64_t) {
  return Status::kUnsupported;
}
}  // namespace slimops::cpu

#endif
