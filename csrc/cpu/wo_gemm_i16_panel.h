// Panel GEMM for the integer path, from M = panel_min_m(...) (wo_gemm_cpu.h):
// the weights are unpacked and transposed once per (Ops::kCols columns x
// kPanelK) into an L1-resident panel, then every Ops::kRowsOfX rows of x run
// over it. One template for every ISA; the vector operations come from an
// Ops trait (panel_ops_avx512.h, panel_ops_avx2.h).
//
// Why: the row tiles of wo_gemm_i16_kernel.h dot a weight row with an x row
// (K along the vector), so every 32 weights x MT rows cost a float
// conversion, a scale and an FMA per tile entry, and every tile re-unpacks
// its weights. Here N runs along the vector instead: a panel register holds
// one k-pair for 16 (zmm) or 8 (ymm) output columns, each x row broadcasts
// its k-pair, and one vpdpwssd / vpmaddwd updates that many outputs. The
// accumulators convert to float only once per x block (up to 128 k), and the
// transposes that build the panel are shared by all M rows.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "wo_gemm_i16_kernel.h"

namespace slimops::cpu::i16 {
namespace {

constexpr int64_t kPanelK = 256;  // k per panel: 128 k-pairs

// The weights of one panel: pairs[kp][c] holds weights k = 2kp, 2kp+1 of
// column c as two int16 (the operand layout of vpmaddwd / vpdpwssd), and the
// weight scales of the chunk's x blocks per column.
template <class Ops>
struct Panel {
  alignas(64) int32_t pairs[kPanelK / 2][Ops::kCols];
  alignas(64) float scales[kPanelK / kXBlock][Ops::kCols];
};

// Unpacks columns [n0, n0 + cols) x k [k0, k0 + kc) into the panel; columns
// past `cols` are zero (their outputs are never stored).
template <class Ops, int kBits>
void pack_panel(const WoGemmParams& p, int64_t n0, int cols, int64_t k0, int64_t kc, Panel<Ops>& panel) {
  constexpr int64_t kBlockBytes = kBits == 8 ? 32 : 16;
  const int64_t row_bytes = kBits == 8 ? p.k : p.k / 2;
  const auto* w = static_cast<const uint8_t*>(p.qweight) + n0 * row_bytes;
  for (int v = 0; v < Ops::kVecs; ++v) {
    const int live = std::clamp(cols - v * Ops::kLanes, 0, Ops::kLanes);
    for (int64_t b = 0; b < kc / kXBlock; ++b) {
      const uint8_t* src = w + v * Ops::kLanes * row_bytes + (k0 / kXBlock + b) * kBlockBytes;
      Ops::template pack_unit<kBits>(src, row_bytes, live, &panel.pairs[b * 16][v * Ops::kLanes], Ops::kCols);
    }
  }
  const int64_t groups = p.k / p.group_size, xb = x_block(p);
  for (int64_t b = 0; b < kc / xb; ++b) {
    const int64_t g = (k0 + b * xb) / p.group_size;
    for (int c = 0; c < Ops::kCols; ++c) panel.scales[b][c] = c < cols ? p.scales[(n0 + c) * groups + g] : 0.f;
  }
}

// out[m0 .. m0 + MT) x [n0, n0 + kCols) += this chunk's products: int32 sums
// over each x block, then one conversion and a (x scale * weight scale) FMA.
template <class Ops, int MT, int kXbPairs>
void panel_tile(const WoGemmParams& p, const XInt16& x, const Panel<Ops>& panel, int64_t m0, int64_t n0,
                const typename Ops::Mask mask[Ops::kVecs], int64_t k0, int64_t kc) {
  using VI = typename Ops::VI;
  constexpr int NV = Ops::kVecs, L = Ops::kLanes;
  const int64_t xblocks = p.k / (2 * kXbPairs);
  const int64_t xstride = p.k / 2;  // int32 pairs per row of x
  float* out = static_cast<float*>(p.out);
  for (int64_t xbl = 0; xbl < kc / (2 * kXbPairs); ++xbl) {
    VI acc[MT][NV];
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] = Ops::zero();
    const int64_t kp0 = xbl * kXbPairs;
    const int32_t* xrow = reinterpret_cast<const int32_t*>(x.q + m0 * p.k + k0) + kp0;
#pragma GCC unroll 1
    for (int kp = 0; kp < kXbPairs; ++kp) {
      VI w[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) w[v] = Ops::load(&panel.pairs[kp0 + kp][v * L]);
#pragma GCC unroll 8
      for (int i = 0; i < MT; ++i) {
        const VI xi = Ops::bcast(xrow[i * xstride + kp]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) Ops::dot(acc[i][v], w[v], xi);
      }
    }
    const int64_t xb_index = (k0 + kp0 * 2) / (2 * kXbPairs);
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      const float sx = x.scales[(m0 + i) * xblocks + xb_index];
      float* o = out + (m0 + i) * p.out_row_stride + n0;
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) Ops::flush(acc[i][v], sx, &panel.scales[xbl][v * L], o + v * L, mask[v]);
    }
  }
}

template <class Ops, int kXbPairs>
void panel_rows(const WoGemmParams& p, const XInt16& x, const Panel<Ops>& panel, int64_t n0,
                const typename Ops::Mask mask[Ops::kVecs], int64_t k0, int64_t kc) {
  int64_t m = 0;
  for (; m + Ops::kRowsOfX <= p.m; m += Ops::kRowsOfX)
    panel_tile<Ops, Ops::kRowsOfX, kXbPairs>(p, x, panel, m, n0, mask, k0, kc);
  for (; m + 4 <= p.m; m += 4) panel_tile<Ops, 4, kXbPairs>(p, x, panel, m, n0, mask, k0, kc);
  for (; m < p.m; ++m) panel_tile<Ops, 1, kXbPairs>(p, x, panel, m, n0, mask, k0, kc);
}

// Columns [n_begin, n_end) for every row of x.
template <class Ops, int kBits>
void panel_gemm(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const int64_t xb = x_block(p), groups = p.k / p.group_size;
  const bool has_zero = p.zeros != nullptr || kBits == 4;
  float* out = static_cast<float*>(p.out);
  Panel<Ops> panel;
  for (int64_t n0 = n_begin; n0 < n_end; n0 += Ops::kCols) {
    const int cols = static_cast<int>(std::min<int64_t>(Ops::kCols, n_end - n0));
    typename Ops::Mask mask[Ops::kVecs];
    for (int v = 0; v < Ops::kVecs; ++v) mask[v] = Ops::tail_mask(std::clamp(cols - v * Ops::kLanes, 0, Ops::kLanes));
    for (int64_t m = 0; m < p.m; ++m) std::memset(out + m * p.out_row_stride + n0, 0, cols * sizeof(float));
    for (int64_t k0 = 0; k0 < p.k; k0 += kPanelK) {
      const int64_t kc = std::min(kPanelK, p.k - k0);
      pack_panel<Ops, kBits>(p, n0, cols, k0, kc, panel);
      if (xb == 128) panel_rows<Ops, 64>(p, x, panel, n0, mask, k0, kc);
      else if (xb == 64) panel_rows<Ops, 32>(p, x, panel, n0, mask, k0, kc);
      else panel_rows<Ops, 16>(p, x, panel, n0, mask, k0, kc);
    }
    if (!has_zero && p.bias == nullptr) continue;
    // The zero point's share and the bias, once per output.
    for (int64_t m = 0; m < p.m; ++m)
      for (int c = 0; c < cols; ++c) {
        const int64_t n = n0 + c;
        float& o = out[m * p.out_row_stride + n];
        if (has_zero)
          o -= zero_share(p.scales + n * groups, p.zeros ? p.zeros + n * groups : nullptr, default_zero(kBits),
                          x.group_sums + m * groups, groups);
        if (p.bias) o += p.bias[n];
      }
  }
}

// The checks, then the panel GEMM for this ISA.
template <class Ops>
Status panel_gemm_dispatch(const WoGemmParams& p, const XInt16& x, int64_t n_begin, int64_t n_end) {
  const Status st = check_i16_params(p, x, n_begin, n_end);
  if (st != Status::kOk) return st;
  if (p.bits == 8) panel_gemm<Ops, 8>(p, x, n_begin, n_end);
  else panel_gemm<Ops, 4>(p, x, n_begin, n_end);
  return Status::kOk;
}

}  // namespace
}  // namespace slimops::cpu::i16
