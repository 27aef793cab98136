// AVX2 low-rank projection. Both passes are the same shape of work: dot a
// range of weight rows (V rows of length k, or U rows of length r) with every
// row of a float32 matrix (x, or the intermediate t). Weight rows stream from
// memory once per row of x, converted to float on load; the x / t rows they
// meet stay in L1 (a 4 x 1 register tile, two accumulators per weight row so
// the FMA chains cover the latency).
#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "avx2_helpers.h"
#include "lowrank_cpu.h"

namespace slimops::cpu {
namespace {

using avx2::hsum_f32x8;

template <DType kDt>
inline __m256 load8(const void* w, int64_t i) {
  if constexpr (kDt == DType::kFloat32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    if constexpr (kDt == DType::kBFloat16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
  }
}

template <DType kDt>
inline float load1(const void* w, int64_t i) {
  if constexpr (kDt == DType::kFloat32) {
    return static_cast<const float*>(w)[i];
  } else {
    alignas(16) uint16_t buf[8] = {static_cast<const uint16_t*>(w)[i]};
    return _mm256_cvtss_f32(load8<kDt>(buf, 0));
  }
}

// out[v * out_stride + row] = dot(w[row], vecs[v]) (+ bias[row]) for rows in
// [row0, row1) and v in [0, nvec).
template <DType kDt, int R>
void dot_tile(const void* w, int64_t len, int64_t row, const float* vecs, int64_t vec_stride, int64_t nvec,
              float* out, int64_t out_stride, const float* bias) {
  for (int64_t v = 0; v < nvec; ++v) {
    const float* x = vecs + v * vec_stride;
    __m256 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
      for (int r = 0; r < R; ++r) {
        acc[r][0] = _mm256_fmadd_ps(load8<kDt>(w, (row + r) * len + i), x0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(load8<kDt>(w, (row + r) * len + i + 8), x1, acc[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      float s = hsum_f32x8(_mm256_add_ps(acc[r][0], acc[r][1]));
      for (int64_t j = i; j < len; ++j) s += load1<kDt>(w, (row + r) * len + j) * x[j];
      out[v * out_stride + row + r] = s + (bias ? bias[row + r] : 0.f);
    }
  }
}

template <DType kDt>
void dot_rows(const void* w, int64_t len, int64_t row0, int64_t row1, const float* vecs, int64_t vec_stride,
              int64_t nvec, float* out, int64_t out_stride, const float* bias) {
  int64_t row = row0;
  for (; row + 4 <= row1; row += 4) dot_tile<kDt, 4>(w, len, row, vecs, vec_stride, nvec, out, out_stride, bias);
  for (; row < row1; ++row) dot_tile<kDt, 1>(w, len, row, vecs, vec_stride, nvec, out, out_stride, bias);
}

void dot_rows_any(DType dt, const void* w, int64_t len, int64_t row0, int64_t row1, const float* vecs,
                  int64_t vec_stride, int64_t nvec, float* out, int64_t out_stride, const float* bias) {
  switch (dt) {
    case DType::kFloat32: return dot_rows<DType::kFloat32>(w, len, row0, row1, vecs, vec_stride, nvec, out, out_stride, bias);
    case DType::kBFloat16: return dot_rows<DType::kBFloat16>(w, len, row0, row1, vecs, vec_stride, nvec, out, out_stride, bias);
    case DType::kFloat16: return dot_rows<DType::kFloat16>(w, len, row0, row1, vecs, vec_stride, nvec, out, out_stride, bias);
  }
}

}  // namespace

Status lowrank_down_avx2(const LowRankParams& p, float* t, int64_t j_begin, int64_t j_end) {
  const Status st = check_lowrank_cpu_params(p, j_begin, j_end, p.r);
  if (st != Status::kOk) return st;
  dot_rows_any(p.dtype, p.v, p.k, j_begin, j_end, static_cast<const float*>(p.x), p.x_row_stride, p.m, t, p.r, nullptr);
  return Status::kOk;
}

Status lowrank_up_avx2(const LowRankParams& p, const float* t, int64_t n_begin, int64_t n_end) {
  const Status st = check_lowrank_cpu_params(p, n_begin, n_end, p.n);
  if (st != Status::kOk) return st;
  dot_rows_any(p.dtype, p.u, p.r, n_begin, n_end, t, p.r, p.m, static_cast<float*>(p.out), p.out_row_stride, p.bias);
  return Status::kOk;
}

}  // namespace slimops::cpu

#else  // built without AVX2 flags (non-x86): cpu_supports(kAvx2) is false, never called

#include "lowrank_cpu.h"

namespace slimops::cpu {
Status lowrank_down_avx2(const LowRankParams&, float*, int64_t, int64_t) { return Status::kUnsupported; }
Status lowrank_up_avx2(const LowRankParams&, const float*, int64_t, int64_t) { return Status::kUnsupported; }
}  // namespace slimops::cpu

#endif
