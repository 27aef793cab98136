// AVX2 2:4 sparse matmul. The weight streams from memory once per block of
// x rows at 9/16 of its dense bytes (fp32: half the values plus 1/16 for
// metadata). Small M: per 16 dense columns, the x values that 8 kept values
// meet are picked by two in-lane permutes and a blend, their indices the
// metadata bits themselves (x rearranged once per call so that each
// 128-bit lane holds the group its kept values come from); tails place
// kept values into their dense columns with a permute and a mask looked up
// by the metadata byte (256 entries, 16 KiB: L1/L2-resident).
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "avx2_helpers.h"
#include "sparse24_xt_common.h"
#include "sparse24_cpu.h"

namespace slimops::cpu {
namespace {

using avx2::hsum_f32x8;
using avx2::load_bf16x8_as_f32;

// For a metadata byte (two groups of 4 columns): the source lane (0..3 of
// the 4 kept values) of each of the 8 columns, and a mask of the kept ones.
struct ExpandEntry {
  alignas(32) int32_t lane[8];
  alignas(32) uint32_t keep[8];
};

struct ExpandTable {
  ExpandEntry e[256];
  ExpandTable() {
    for (int byte = 0; byte < 256; ++byte) {
      for (int col = 0; col < 8; ++col) {
        const int group = col / 4, nib = (byte >> (4 * group)) & 0xF;
        const int i0 = nib & 3, i1 = nib >> 2, c = col % 4;
        e[byte].lane[col] = c == i0 ? 2 * group : (c == i1 ? 2 * group + 1 : 0);
        e[byte].keep[col] = (c == i0 || c == i1) ? 0xFFFFFFFFu : 0u;
      }
    }
  }
};

const ExpandTable& expand_table() {
  static const ExpandTable table;
  return table;
}

// 4 kept values (fp32 or bf16) into the low half of a vector.
template <DType kDt>
inline __m256 load4(const void* values, int64_t i) {
  if constexpr (kDt == DType::kFloat32) {
    return _mm256_castps128_ps256(_mm_loadu_ps(static_cast<const float*>(values) + i));
  } else {
    const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(values) + i));
    return _mm256_castps128_ps256(_mm_castsi128_ps(_mm_slli_epi32(_mm_cvtepu16_epi32(h), 16)));
  }
}

// The 8 dense weights of columns 8j .. 8j + 7.
template <DType kDt>
inline __m256 expand8(const void* values, int64_t vi, uint8_t meta, const ExpandTable& t) {
  const ExpandEntry& e = t.e[meta];
  const __m256 placed = _mm256_permutevar8x32_ps(load4<kDt>(values, vi), _mm256_load_si256(reinterpret_cast<const __m256i*>(e.lane)));
  return _mm256_and_ps(placed, _mm256_load_ps(reinterpret_cast<const float*>(e.keep)));
}

// x's rows with each whole block of 16 columns rearranged as columns 0-3,
// 8-11, 4-7, 12-15: the block's two 8-float halves are then (group 0 |
// group 2) and (group 1 | group 3), and an in-lane permute of each finds,
// in every 128-bit lane, the group that lane's kept values come from.
std::vector<float> arranged_x(const Sparse24Params& p) {
  const int64_t cols = p.k / 16 * 16;
  std::vector<float> xa(static_cast<size_t>(p.m * cols));
  for (int64_t r = 0; r < p.m; ++r) {
    const float* src = static_cast<const float*>(p.x) + r * p.x_row_stride;
    float* dst = xa.data() + r * cols;
    for (int64_t c = 0; c < cols; c += 16) {
      const __m256 lo = _mm256_loadu_ps(src + c), hi = _mm256_loadu_ps(src + c + 8);
      _mm256_storeu_ps(dst + c, _mm256_permute2f128_ps(lo, hi, 0x20));
      _mm256_storeu_ps(dst + c + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
  }
  return xa;
}

// 8 consecutive kept values from vi, as float32.
template <DType kDt>
inline __m256 load_kept8(const void* values, int64_t vi) {
  if constexpr (kDt == DType::kFloat32) {
    return _mm256_loadu_ps(static_cast<const float*>(values) + vi);
  } else {
    return load_bf16x8_as_f32(static_cast<const uint16_t*>(values) + vi);
  }
}

// The x values that the 8 kept values of one 16-column block meet, from the
// block's arranged x (a: groups 0 | 2, b: groups 1 | 3). Kept value v's
// position in its group is bits 2v, 2v + 1 of the block's metadata, which
// vpermilps reads as the low bits of lane v's index as they are; lanes 2, 3,
// 6, 7 (groups 1 and 3) take b's.
inline __m256 kept_x8(const float* xa, __m256i positions) {
  constexpr int kGroups13 = 0xCC;
  return _mm256_blend_ps(_mm256_permutevar_ps(_mm256_loadu_ps(xa), positions),
                         _mm256_permutevar_ps(_mm256_loadu_ps(xa + 8), positions), kGroups13);
}

// Output column n for MR rows of x, two accumulators per row for FMA
// latency. xa: arranged_x rows, row stride (k / 16) * 16.
template <DType kDt, int MR>
void row_block(const Sparse24Params& p, const float* xa, int64_t n, int64_t m0, const ExpandTable& t) {
  const float* x = static_cast<const float*>(p.x) + m0 * p.x_row_stride;
  const int64_t xa_stride = p.k / 16 * 16;
  xa += m0 * xa_stride;
  const uint8_t* meta = p.meta + n * (p.k / 8);
  const int64_t vbase = n * (p.k / 2);
  __m256 acc0[MR], acc1[MR];
  for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  // Software prefetch ahead in both streams: the kept values and the
  // metadata each cross a page every few hundred iterations, where the
  // hardware streamers stop and must retrain.
  const int64_t vbytes = kDt == DType::kFloat32 ? 4 : 2;
  const char* vrow = static_cast<const char*>(p.values) + vbase * vbytes;
  int64_t j = 0;  // in units of 8 columns (4 kept values, one metadata byte)
  const __m256i shifts_lo = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i shifts_hi = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
  for (; j + 4 <= p.k / 8; j += 4) {  // two 16-column blocks
    if ((j * 4 * vbytes) % 64 == 0) {
      _mm_prefetch(vrow + j * 4 * vbytes + 2048, _MM_HINT_T0);
      _mm_prefetch(vrow + j * 4 * vbytes + 6144, _MM_HINT_T1);
    }
    if (j % 64 == 0) _mm_prefetch(reinterpret_cast<const char*>(meta) + j + 256, _MM_HINT_T0);
    uint32_t word;
    std::memcpy(&word, meta + j, 4);
    const __m256i all = _mm256_set1_epi32(static_cast<int>(word));
    const __m256i pos0 = _mm256_srlv_epi32(all, shifts_lo), pos1 = _mm256_srlv_epi32(all, shifts_hi);
    const __m256 v0 = load_kept8<kDt>(p.values, vbase + 4 * j), v1 = load_kept8<kDt>(p.values, vbase + 4 * j + 8);
    for (int r = 0; r < MR; ++r) {
      const float* xr = xa + r * xa_stride + 8 * j;
      acc0[r] = _mm256_fmadd_ps(v0, kept_x8(xr, pos0), acc0[r]);
      acc1[r] = _mm256_fmadd_ps(v1, kept_x8(xr + 16, pos1), acc1[r]);
    }
  }
  for (; j + 2 <= p.k / 8; j += 2) {  // what is left, 8 columns at a time
    const __m256 w0 = expand8<kDt>(p.values, vbase + 4 * j, meta[j], t);
    const __m256 w1 = expand8<kDt>(p.values, vbase + 4 * j + 4, meta[j + 1], t);
    for (int r = 0; r < MR; ++r) {
      acc0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * p.x_row_stride + 8 * j), acc0[r]);
      acc1[r] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + r * p.x_row_stride + 8 * j + 8), acc1[r]);
    }
  }
  if (j < p.k / 8) {
    const __m256 w0 = expand8<kDt>(p.values, vbase + 4 * j, meta[j], t);
    for (int r = 0; r < MR; ++r) acc0[r] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + r * p.x_row_stride + 8 * j), acc0[r]);
  }
  float* out = static_cast<float*>(p.out);
  for (int r = 0; r < MR; ++r)
    out[(m0 + r) * p.out_row_stride + n] = hsum_f32x8(_mm256_add_ps(acc0[r], acc1[r])) + (p.bias ? p.bias[n] : 0.f);
}

template <DType kDt>
void rows(const Sparse24Params& p, int64_t n0, int64_t n1) {
  const ExpandTable& t = expand_table();
  // Once per call: torch's parallel_for hands each thread one range.
  const std::vector<float> xa = arranged_x(p);
  for (int64_t n = n0; n < n1; ++n) {
    int64_t m = 0;
    for (; m + 4 <= p.m; m += 4) row_block<kDt, 4>(p, xa.data(), n, m, t);
    switch (p.m - m) {
      case 3: row_block<kDt, 3>(p, xa.data(), n, m, t); break;
      case 2: row_block<kDt, 2>(p, xa.data(), n, m, t); break;
      case 1: row_block<kDt, 1>(p, xa.data(), n, m, t); break;
      default: break;
    }
  }
}

// Kept values per chunk of rows_xt's walk along K, as float32 in an L1 buffer.
constexpr int64_t kXtChunkValues = 256;

// Larger M: x transposed into blocks of 16 rows, xt [mblocks][k][16], so
// each kept value is broadcast once and meets 16 rows of x with two FMAs:
// the FMAs spent are the sparse count (half of dense), which is what binds
// once the weight is reused across many rows. Where each value's x column
// starts comes from a table per metadata byte (sparse24_xt_common.h).
template <DType kDt>
void rows_xt(const Sparse24Params& p, const float* xt, int64_t mblocks, int64_t n0, int64_t n1) {
  const int64_t half = p.k / 2, groups = p.k / 4;
  const XtColumnTable& cols = xt_column_table();
  alignas(64) float vbuf[kXtChunkValues];
  float* out = static_cast<float*>(p.out);
  for (int64_t mb = 0; mb < mblocks; ++mb) {
    const float* xb = xt + mb * p.k * 16;
    const int64_t mrows = std::min<int64_t>(16, p.m - mb * 16);
    for (int64_t n = n0; n < n1; ++n) {
      const uint8_t* meta = p.meta + n * (p.k / 8);
      // One accumulator pair per kept slot of the two groups: each FMA chain
      // then takes one FMA per iteration, so the loop runs at FMA throughput
      // instead of waiting on FMA latency.
      __m256 acc[4][2];
      for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
      for (int64_t g0 = 0; g0 < groups; g0 += kXtChunkValues / 2) {
        const int64_t g1 = std::min(groups, g0 + kXtChunkValues / 2);
        const float* v = kept_values_f32<kDt>(p, n * half + 2 * g0, 2 * (g1 - g0), vbuf);
        for (int64_t g = g0; g < g1; g += 2) {
          const uint32_t off = cols.packed[meta[g / 2]];
          const char* xg = reinterpret_cast<const char*>(xb + 4 * g * 16);
          const float* vg = v + 2 * (g - g0);
          for (int t = 0; t < 4; ++t) {
            const __m256 w = _mm256_broadcast_ss(vg + t);
            const float* xc = reinterpret_cast<const float*>(xg + XtColumnTable::offset_bytes(off, t));
            acc[t][0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xc), acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xc + 8), acc[t][1]);
          }
        }
      }
      alignas(32) float sums[16];
      _mm256_store_ps(sums, _mm256_add_ps(_mm256_add_ps(acc[0][0], acc[1][0]), _mm256_add_ps(acc[2][0], acc[3][0])));
      _mm256_store_ps(sums + 8, _mm256_add_ps(_mm256_add_ps(acc[0][1], acc[1][1]), _mm256_add_ps(acc[2][1], acc[3][1])));
      const float bias = p.bias ? p.bias[n] : 0.f;
      for (int64_t r = 0; r < mrows; ++r) out[(mb * 16 + r) * p.out_row_stride + n] = sums[r] + bias;
    }
  }
}

}  // namespace

Status sparse24_rows_xt_avx2(const Sparse24Params& p, const float* xt, int64_t n0, int64_t n1) {
  const Status st = check_sparse24_cpu_params(p, n0, n1);
  if (st != Status::kOk) return st;
  const int64_t mblocks = (p.m + 15) / 16;
  if (p.dtype == DType::kFloat32) {
    rows_xt<DType::kFloat32>(p, xt, mblocks, n0, n1);
  } else {
    rows_xt<DType::kBFloat16>(p, xt, mblocks, n0, n1);
  }
  return Status::kOk;
}

Status sparse24_rows_avx2(const Sparse24Params& p, int64_t n0, int64_t n1) {
  const Status st = check_sparse24_cpu_params(p, n0, n1);
  if (st != Status::kOk) return st;
  if (p.dtype == DType::kFloat32) {
    rows<DType::kFloat32>(p, n0, n1);
  } else {
    rows<DType::kBFloat16>(p, n0, n1);
  }
  return Status::kOk;
}

}  // namespace slimops::cpu

#endif
