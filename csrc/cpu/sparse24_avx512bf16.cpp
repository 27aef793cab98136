// AVX-512 BF16 2:4 sparse matmul for bf16 x and bf16 kept values, M >= 8.
//
// A group of 4 dense columns keeps two values (v0, v1), one 32-bit word,
// and meets x at two positions (i0 < i1): one vdpbf16ps adds v0 x[i0] +
// v1 x[i1] for 16 rows of x at once, if the 16 (x[i0], x[i1]) pairs sit in
// one zmm. There are 6 position pairs per group, so the call first builds,
// per block of 16 rows, a table of all 6 pair vectors of every group
// (sparse24_pair_table_avx512bf16; 384 bytes a group). Then per kept pair:
// the word broadcast from memory, one 64-byte table load, one vdpbf16ps;
// the float path (sparse24_avx512.cpp, rows_xt) needs two broadcasts, two x
// loads and two FMAs: 8192^2, M = 16, 2 threads, 6.6-7.1 ms against the
// float path's 16-17 ms (AMD EPYC with AVX-512 BF16).
//
// The table of a whole K spills L2 (786 KiB a block of rows at K = 8192:
// session 6's version of this idea walked it so and ran slower than the
// float path), so a block of kColumnBlock output columns sweeps one tile of
// kTileGroups groups (kept in L1) before the next, their float32 sums
// parked in a small buffer between tiles. The table is built with gathers
// (16 rows of a column) and one convert-and-interleave per pair vector.
//
// Products of two bf16 are exact in float32; the sums round as the float
// path's do (vdpbf16ps flushes denormal inputs and outputs to zero). x must
// come from bf16 (the table rounds x to bf16, exact only then).
// Compiled with the AVX-512 BF16 flags; call only when cpu_has_avx512_bf16().
#include "sparse24_cpu.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)

#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace slimops::cpu {
namespace {

constexpr int kPairsPerGroup = 6;
constexpr int64_t kPairBytes = 16 * 2 * sizeof(uint16_t);  // 16 rows x (x[i0], x[i1])
constexpr int64_t kGroupBytes = kPairsPerGroup * kPairBytes;
static_assert(kGroupBytes == kSparse24PairTableGroupBytes, "the table layout the bindings allocate");
// Groups per table tile: 16 groups (64 dense columns) = 6 KiB, in L1 with
// the kept values and sums streaming past it. 8192^2, M = 16, 2 threads
// (AMD EPYC, 32 KiB L1): 16 groups 6.6 ms, 32 groups 7.0, 64 groups 16.
constexpr int64_t kTileGroups = 16;
// Output columns sweeping one tile before the next tile: the tile is read
// from L2 once per block (64 to 256 measured alike).
constexpr int64_t kColumnBlock = 64;

// The position pair (i0, i1) of each pair slot, and per metadata byte (two
// groups) the byte offsets of their slots, the low group's in the low half:
// one lookup per two groups. (Computing a slot from the nibble instead, with
// the table laid out by nibble, took 6 integer instructions a group where
// this takes 2, and ran 1.2x slower: instructions issued seem to bind this
// loop more than the load ports.) A nibble that is not a valid pair
// (i0 >= i1) maps to slot 0: wrong values, but no read outside the table.
constexpr int kPairPos[kPairsPerGroup][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};

struct PairOffsetTable {
  uint32_t packed[256];
  PairOffsetTable() {
    int slot_of_nibble[16] = {};
    for (int s = 0; s < kPairsPerGroup; ++s) slot_of_nibble[kPairPos[s][0] | kPairPos[s][1] << 2] = s;
    for (int byte = 0; byte < 256; ++byte) {
      const uint32_t lo = uint32_t(slot_of_nibble[byte & 0xF] * kPairBytes);
      const uint32_t hi = uint32_t(kGroupBytes + slot_of_nibble[byte >> 4] * kPairBytes);
      packed[byte] = lo | hi << 16;
    }
  }
};

const PairOffsetTable& pair_offset_table() {
  static const PairOffsetTable table;
  return table;
}

// One kept pair (a 32-bit word of two bf16) times its 16 x pairs.
inline __m512 dot_pair(__m512 acc, const uint32_t* pair, const char* x_pairs) {
  const __m512i w = _mm512_set1_epi32(static_cast<int>(*pair));
  return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)_mm512_load_si512(x_pairs));
}

}  // namespace

Status sparse24_pair_table_avx512bf16(const Sparse24Params& p, uint16_t* table, int64_t g0, int64_t g1) {
  if (p.x_row_stride > INT32_MAX / 16 || (reinterpret_cast<uintptr_t>(table) & 63u) != 0) return Status::kUnsupported;
  const int64_t groups = p.k / 4, mblocks = (p.m + 15) / 16;
  const float* x = static_cast<const float*>(p.x);
  // Lane r of a gather reads row r; interleaving two converted columns puts
  // row r's (x[i0], x[i1]) in 32-bit lane r.
  const __m512i rows16 = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(static_cast<int>(p.x_row_stride)));
  alignas(64) uint16_t pair_order[32];
  for (int r = 0; r < 16; ++r) {
    pair_order[2 * r] = static_cast<uint16_t>(r);            // x[i0] of row r: the low half
    pair_order[2 * r + 1] = static_cast<uint16_t>(16 + r);   // x[i1] of row r: the high half
  }
  const __m512i interleave = _mm512_load_si512(pair_order);
  for (int64_t mb = 0; mb < mblocks; ++mb) {
    const int64_t rows = std::min<int64_t>(16, p.m - mb * 16);
    const __mmask16 live = static_cast<__mmask16>((1u << rows) - 1u);  // rows past M read as zero
    for (int64_t g = g0; g < g1; ++g) {
      const float* xg = x + mb * 16 * p.x_row_stride + 4 * g;
      __m512 col[4];
      for (int c = 0; c < 4; ++c) col[c] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, rows16, xg + c, 4);
      char* entry = reinterpret_cast<char*>(table) + (mb * groups + g) * kGroupBytes;
      for (int s = 0; s < kPairsPerGroup; ++s) {
        // Round to nearest even: exact for x that came from bf16.
        const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(col[kPairPos[s][1]], col[kPairPos[s][0]]);
        _mm512_store_si512(entry + s * kPairBytes, _mm512_permutexvar_epi16(interleave, both));
      }
    }
  }
  return Status::kOk;
}

Status sparse24_rows_pairs_avx512bf16(const Sparse24Params& p, const uint16_t* table, int64_t n0, int64_t n1) {
  const Status st = check_sparse24_cpu_params(p, n0, n1);
  if (st != Status::kOk) return st;
  if (p.dtype != DType::kBFloat16 || (reinterpret_cast<uintptr_t>(table) & 63u) != 0) return Status::kUnsupported;
  const int64_t groups = p.k / 4, mblocks = (p.m + 15) / 16;
  const PairOffsetTable& offsets = pair_offset_table();
  const uint32_t* kept = static_cast<const uint32_t*>(p.values);  // one word per group
  float* out = static_cast<float*>(p.out);
  alignas(64) float sums[kColumnBlock][16];
  for (int64_t mb = 0; mb < mblocks; ++mb) {
    const char* tb = reinterpret_cast<const char*>(table) + mb * groups * kGroupBytes;
    const int64_t rows = std::min<int64_t>(16, p.m - mb * 16);
    for (int64_t nb = n0; nb < n1; nb += kColumnBlock) {
      const int64_t ncols = std::min(kColumnBlock, n1 - nb);
      for (int64_t c = 0; c < ncols; ++c) _mm512_store_ps(sums[c], _mm512_setzero_ps());
      for (int64_t t0 = 0; t0 < groups; t0 += kTileGroups) {
        const int64_t t1 = std::min(groups, t0 + kTileGroups);  // even: K % 8 == 0
        const char* tile = tb + t0 * kGroupBytes;
        for (int64_t c = 0; c < ncols; ++c) {
          const int64_t n = nb + c;
          const uint8_t* meta = p.meta + n * (p.k / 8) + t0 / 2;
          const uint32_t* w = kept + n * groups + t0;
          // The next tile's kept pairs of this column (DRAM) into L2 ahead.
          _mm_prefetch(reinterpret_cast<const char*>(w + kTileGroups), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(w + kTileGroups + 16), _MM_HINT_T1);
          _mm_prefetch(reinterpret_cast<const char*>(meta + kTileGroups / 2), _MM_HINT_T1);
          // Eight chains: vdpbf16ps has a latency of several cycles (four
          // chains ran 1.1 ns a group, latency-bound).
          __m512 a[8];
          a[0] = _mm512_load_ps(sums[c]);
          for (int i = 1; i < 8; ++i) a[i] = _mm512_setzero_ps();
          const int64_t len = t1 - t0;
          int64_t g = 0;
          for (; g + 8 <= len; g += 8) {
            const char* tg = tile + g * kGroupBytes;
            for (int b = 0; b < 4; ++b) {
              const uint32_t o = offsets.packed[meta[g / 2 + b]];
              a[2 * b] = dot_pair(a[2 * b], w + g + 2 * b, tg + 2 * b * kGroupBytes + (o & 0xFFFF));
              a[2 * b + 1] = dot_pair(a[2 * b + 1], w + g + 2 * b + 1, tg + 2 * b * kGroupBytes + (o >> 16));
            }
          }
          for (; g < len; g += 2) {  // pairs of groups left (K % 8 == 0)
            const uint32_t o = offsets.packed[meta[g / 2]];
            const char* tg = tile + g * kGroupBytes;
            a[0] = dot_pair(a[0], w + g, tg + (o & 0xFFFF));
            a[1] = dot_pair(a[1], w + g + 1, tg + (o >> 16));
          }
          for (int i = 0; i < 4; ++i) a[i] = _mm512_add_ps(a[i], a[i + 4]);
          _mm512_store_ps(sums[c], _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
        }
      }
      for (int64_t c = 0; c < ncols; ++c) {
        const float bias = p.bias ? p.bias[nb + c] : 0.f;
        for (int64_t i = 0; i < rows; ++i) out[(mb * 16 + i) * p.out_row_stride + nb + c] = sums[c][i] + bias;
      }
    }
  }
  return Status::kOk;
}

}  // namespace slimops::cpu

#else  // the compiler cannot build AVX-512 BF16: never selected

namespace slimops::cpu {
Status sparse24_pair_table_avx512bf16(const Sparse24Params&, uint16_t*, int64_t, int64_t) {
  return Status::kUnsupported;
}
Status sparse24_rows_pairs_avx512bf16(const Sparse24Params&, const uint16_t*, int64_t, int64_t) {
  return Status::kUnsupported;
}
}  // namespace slimops::cpu

#endif
