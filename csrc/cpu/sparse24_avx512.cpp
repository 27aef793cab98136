// AVX-512 2:4 sparse matmul: the same two plans as sparse24_avx2.cpp, with
// the instructions AVX-512 adds for exactly this shape of work:
//   - small M: a two-source permute brings, for 16 kept values, the 16 x
//     values they meet out of x's 32 columns, with indices made from the
//     metadata word by one shift and one ternary-logic op: no table lookups,
//     one FMA per kept value (the tails place kept values into their dense
//     columns with vexpandps instead);
//   - larger M: x transposed in blocks of 16 rows is one zmm per column, so a
//     kept value meets 16 rows in one FMA (its broadcast folded into the FMA).
// Compiled with the AVX-512 flags of wo_gemm_i16_avx512vnni.cpp; call only
// when cpu_supports(kAvx512Vnni) (which implies AVX-512 F/BW).
#include "sparse24_cpu.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "avx2_helpers.h"
#include "avx512_helpers.h"
#include "sparse24_xt_common.h"

namespace slimops::cpu {
namespace {

// Metadata byte (two groups) -> the 8-bit mask of its kept columns.
struct KeptMaskTable {
  uint8_t mask[256];
  KeptMaskTable() {
    for (int byte = 0; byte < 256; ++byte) {
      uint8_t m = 0;
      for (int group = 0; group < 2; ++group) {
        const int nib = (byte >> (4 * group)) & 0xF;
        m |= static_cast<uint8_t>(((1u << (nib & 3)) | (1u << (nib >> 2))) << (4 * group));
      }
      mask[byte] = m;
    }
  }
};

const KeptMaskTable& kept_mask_table() {
  static const KeptMaskTable table;
  return table;
}

// The 16 dense weights of columns 16j .. 16j + 15 (8 kept values from vi).
template <DType kDt>
inline __m512 expand16(const void* values, int64_t vi, const uint8_t* meta, int64_t j, const KeptMaskTable& t) {
  const __mmask16 m = static_cast<__mmask16>(t.mask[meta[2 * j]] | (t.mask[meta[2 * j + 1]] << 8));
  if constexpr (kDt == DType::kFloat32) {
    return _mm512_maskz_expandloadu_ps(m, static_cast<const float*>(values) + vi);
  } else {
    const __m256 v = avx2::load_bf16x8_as_f32(static_cast<const uint16_t*>(values) + vi);
    return _mm512_maskz_expand_ps(m, _mm512_castps256_ps512(v));
  }
}

// The x columns (0 .. 31 of 32) that 16 consecutive kept values meet, from
// their 4 metadata bytes: kept value v is in group v / 2 at the position in
// bits 2v, 2v + 1 of the little-endian word (canonical layout), so column
// 4 (v / 2) + ((word >> 2v) & 3).
inline __m512i kept_columns(const uint8_t* meta4) {
  uint32_t word;
  std::memcpy(&word, meta4, 4);
  const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i group_base = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
  constexpr int kAAndBOrC = 0xEA;  // ternary-logic truth table of (a & b) | c
  return _mm512_ternarylogic_epi32(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(word)), shifts),
                                   _mm512_set1_epi32(3), group_base, kAAndBOrC);
}

// 16 consecutive kept values from vi, as float32.
template <DType kDt>
inline __m512 load_kept16(const void* values, int64_t vi) {
  if constexpr (kDt == DType::kFloat32) {
    return _mm512_loadu_ps(static_cast<const float*>(values) + vi);
  } else {
    return avx512::load_bf16x16_as_f32(static_cast<const uint16_t*>(values) + vi);
  }
}

template <DType kDt, int MR>
void row_block(const Sparse24Params& p, int64_t n, int64_t m0, const KeptMaskTable& t) {
  const float* x = static_cast<const float*>(p.x) + m0 * p.x_row_stride;
  const uint8_t* meta = p.meta + n * (p.k / 8);
  const int64_t vbase = n * (p.k / 2);
  const int64_t vbytes = kDt == DType::kFloat32 ? 4 : 2;
  const char* vrow = static_cast<const char*>(p.values) + vbase * vbytes;
  __m512 acc0[MR], acc1[MR];
  for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  const int64_t blocks = p.k / 16;  // of 16 dense columns, 8 kept values
  int64_t j = 0;
  for (; j + 4 <= blocks; j += 4) {
    // 64 columns, 32 kept values: two permute steps, one accumulator each.
    // Both streams prefetched ahead (see sparse24_avx2.cpp): kept values
    // 2 KiB ahead into L1 and 6 KiB into L2. This loop consumes them ~1.8x
    // as fast as the expand loop did and wants them nearer (one thread from
    // DRAM: 1.83-1.92x dense fp32, 1.44-1.49x at that loop's 4 / 8 KiB;
    // bench/NOTES.md, session 11).
    for (int64_t line = 0; line < 32 * vbytes; line += 64) {
      _mm_prefetch(vrow + j * 8 * vbytes + line + 2048, _MM_HINT_T0);
      _mm_prefetch(vrow + j * 8 * vbytes + line + 6144, _MM_HINT_T1);
    }
    if (j % 32 == 0) _mm_prefetch(reinterpret_cast<const char*>(meta) + 2 * j + 256, _MM_HINT_T0);
    const __m512i c0 = kept_columns(meta + 2 * j), c1 = kept_columns(meta + 2 * j + 4);
    const __m512 v0 = load_kept16<kDt>(p.values, vbase + 8 * j);
    const __m512 v1 = load_kept16<kDt>(p.values, vbase + 8 * j + 16);
    for (int r = 0; r < MR; ++r) {
      const float* xr = x + r * p.x_row_stride + 16 * j;
      const __m512 x0 = _mm512_permutex2var_ps(_mm512_loadu_ps(xr), c0, _mm512_loadu_ps(xr + 16));
      const __m512 x1 = _mm512_permutex2var_ps(_mm512_loadu_ps(xr + 32), c1, _mm512_loadu_ps(xr + 48));
      acc0[r] = _mm512_fmadd_ps(v0, x0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(v1, x1, acc1[r]);
    }
  }
  for (; j + 2 <= blocks; j += 2) {  // what is left: 16-column blocks
    const __m512 w0 = expand16<kDt>(p.values, vbase + 8 * j, meta, j, t);
    const __m512 w1 = expand16<kDt>(p.values, vbase + 8 * j + 8, meta, j + 1, t);
    for (int r = 0; r < MR; ++r) {
      acc0[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + r * p.x_row_stride + 16 * j), acc0[r]);
      acc1[r] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + r * p.x_row_stride + 16 * j + 16), acc1[r]);
    }
  }
  float tail[MR] = {};
  if (j < blocks) {
    const __m512 w0 = expand16<kDt>(p.values, vbase + 8 * j, meta, j, t);
    for (int r = 0; r < MR; ++r) acc0[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + r * p.x_row_stride + 16 * j), acc0[r]);
    ++j;
  }
  if (16 * j < p.k) {  // K % 16 == 8: one last group pair, scalar
    const uint8_t byte = meta[2 * j];
    for (int t2 = 0; t2 < 4; ++t2) {
      const int64_t vi = vbase + 8 * j + t2;
      const int nib = (byte >> (4 * (t2 / 2))) & 0xF;
      const int64_t col = 16 * j + 4 * (t2 / 2) + ((nib >> (2 * (t2 % 2))) & 3);
      float w;
      if constexpr (kDt == DType::kFloat32) {
        w = static_cast<const float*>(p.values)[vi];
      } else {
        const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(p.values)[vi]) << 16;
        std::memcpy(&w, &bits, 4);
      }
      for (int r = 0; r < MR; ++r) tail[r] += w * x[r * p.x_row_stride + col];
    }
  }
  float* out = static_cast<float*>(p.out);
  for (int r = 0; r < MR; ++r)
    out[(m0 + r) * p.out_row_stride + n] =
        _mm512_reduce_add_ps(_mm512_add_ps(acc0[r], acc1[r])) + tail[r] + (p.bias ? p.bias[n] : 0.f);
}

template <DType kDt>
void rows(const Sparse24Params& p, int64_t n0, int64_t n1) {
  const KeptMaskTable& t = kept_mask_table();
  for (int64_t n = n0; n < n1; ++n) {
    int64_t m = 0;
    for (; m + 4 <= p.m; m += 4) row_block<kDt, 4>(p, n, m, t);
    switch (p.m - m) {
      case 3: row_block<kDt, 3>(p, n, m, t); break;
      case 2: row_block<kDt, 2>(p, n, m, t); break;
      case 1: row_block<kDt, 1>(p, n, m, t); break;
      default: break;
    }
  }
}

// Columns of x (each a 64-byte line of 16 rows) one tile covers: a tile of
// xt (16 KiB) stays in L1 while a block of output columns sweeps it, instead
// of every output column streaming all of xt from L2.
constexpr int64_t kXtTileCols = 256;
constexpr int64_t kXtBlockRows = 8;

template <DType kDt>
void rows_xt(const Sparse24Params& p, const float* xt, int64_t n0, int64_t n1) {
  const int64_t half = p.k / 2, mblocks = (p.m + 15) / 16;
  const XtColumnTable& cols = xt_column_table();
  alignas(64) float vbuf[kXtTileCols / 2];
  float* out = static_cast<float*>(p.out);
  for (int64_t mb = 0; mb < mblocks; ++mb) {
    const float* xb = xt + mb * p.k * 16;
    const int64_t mrows = std::min<int64_t>(16, p.m - mb * 16);
    for (int64_t nb = n0; nb < n1; nb += kXtBlockRows) {
      const int64_t nrows = std::min(kXtBlockRows, n1 - nb);
      __m512 total[kXtBlockRows];
      for (auto& t : total) t = _mm512_setzero_ps();
      for (int64_t c0 = 0; c0 < p.k; c0 += kXtTileCols) {
        const int64_t g0 = c0 / 4, g1 = std::min(p.k, c0 + kXtTileCols) / 4;
        for (int64_t r = 0; r < nrows; ++r) {
          const int64_t n = nb + r;
          const uint8_t* meta = p.meta + n * (p.k / 8);
          const float* v = kept_values_f32<kDt>(p, n * half + 2 * g0, 2 * (g1 - g0), vbuf);
          // Two metadata bytes per step, one accumulator per kept slot: 8
          // independent FMA chains, enough to keep both FMA pipes busy
          // through the FMA latency (4 chains capped the loop at one FMA
          // per cycle).
          __m512 acc[8];
          for (auto& a : acc) a = _mm512_setzero_ps();
          const char* x0 = reinterpret_cast<const char*>(xb);
          auto step = [&](int64_t g, int a0) {
            const uint32_t off = cols.packed[meta[g / 2]];
            const char* xg = x0 + 4 * g * 16 * sizeof(float);
            const float* vg = v + 2 * (g - g0);
            for (int t = 0; t < 4; ++t)
              acc[a0 + t] = _mm512_fmadd_ps(_mm512_set1_ps(vg[t]),
                                            _mm512_loadu_ps(xg + XtColumnTable::offset_bytes(off, t)), acc[a0 + t]);
          };
          int64_t g = g0;
          for (; g + 4 <= g1; g += 4) {
            step(g, 0);
            step(g + 2, 4);
          }
          if (g < g1) step(g, 0);
          for (int t = 0; t < 4; ++t) acc[t] = _mm512_add_ps(acc[t], acc[t + 4]);
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
}

}  // namespace

Status sparse24_rows_avx512(const Sparse24Params& p, int64_t n0, int64_t n1) {
  const Status st = check_sparse24_cpu_params(p, n0, n1);
  if (st != Status::kOk) return st;
  if (p.dtype == DType::kFloat32) {
    rows<DType::kFloat32>(p, n0, n1);
  } else {
    rows<DType::kBFloat16>(p, n0, n1);
  }
  return Status::kOk;
}

Status sparse24_rows_xt_avx512(const Sparse24Params& p, const float* xt, int64_t n0, int64_t n1) {
  const Status st = check_sparse24_cpu_params(p, n0, n1);
  if (st != Status::kOk) return st;
  if (p.dtype == DType::kFloat32) {
    rows_xt<DType::kFloat32>(p, xt, n0, n1);
  } else {
    rows_xt<DType::kBFloat16>(p, xt, n0, n1);
  }
  return Status::kOk;
}

}  // namespace slimops::cpu

#else  // built without AVX-512 support in the compiler: never selected

namespace slimops::cpu {
Status sparse24_rows_avx512(const Sparse24Params&, int64_t, int64_t) { return Status::kUnsupported; }
Status sparse24_rows_xt_avx512(const Sparse24Params&, const float*, int64_t, int64_t) { return Status::kUnsupported; }
}  // namespace slimops::cpu

#endif
