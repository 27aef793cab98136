// Scalar KV attention (any CPU), the append and the combine of partials.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kv_attention_kernel.h"

namespace slimops::cpu {
namespace {

struct ScalarOps {
  static void prefetch(const void*, int64_t) {}
  static const float* load_row(const void* base, int64_t off, DType dt, int64_t d, float* buf) {
    if (dt == DType::kFloat32) return static_cast<const float*>(base) + off;
    const uint16_t* src = static_cast<const uint16_t*>(base) + off;
    for (int64_t c = 0; c < d; ++c) buf[c] = bf16_to_f32(src[c]);
    return buf;
  }
  static const float* load_row_i8(const int8_t* src, int64_t d, float* buf) {
    for (int64_t c = 0; c < d; ++c) buf[c] = static_cast<float>(src[c]);
    return buf;
  }
  template <int R>
  static void dot_rows(const float* q, int64_t d, const float* k0, const float* k1, float* out, int64_t out_stride,
                       int64_t nk) {
    for (int r = 0; r < R; ++r) {
      for (int64_t u = 0; u < nk; ++u) {
        const float* k = u == 0 ? k0 : k1;
        float s = 0.f;
        for (int64_t c = 0; c < d; ++c) s += q[r * d + c] * k[c];
        out[r * out_stride + u] = s;
      }
    }
  }
  static float exp_shift(const float* s, int64_t n, float max, float* out) {
    float sum = 0.f;
    for (int64_t j = 0; j < n; ++j) sum += (out[j] = std::exp(s[j] - max));
    return sum;
  }
  static void scale_row(float* y, int64_t d, float a) {
    for (int64_t c = 0; c < d; ++c) y[c] *= a;
  }
  template <int NV>
  static void axpy_rows(float* acc, int64_t rows, int64_t d, const float* coef, int64_t coef_stride,
                        const float* const* v) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int u = 0; u < NV; ++u) {
        const float a = coef[r * coef_stride + u];
        for (int64_t c = 0; c < d; ++c) acc[r * d + c] += a * v[u][c];
      }
    }
  }
};

// The row of d values at src (element type dt) as float32, into buf.
void row_to_f32(const void* src, DType dt, int64_t d, float* buf) {
  if (dt == DType::kFloat32) {
    std::memcpy(buf, src, d * sizeof(float));
  } else {
    for (int64_t c = 0; c < d; ++c) buf[c] = bf16_to_f32(static_cast<const uint16_t*>(src)[c]);
  }
}

void store_row(void* dst, DType dt, int64_t d, const float* v) {
  if (dt == DType::kFloat32) {
    std::memcpy(dst, v, d * sizeof(float));
  } else {
    for (int64_t c = 0; c < d; ++c) static_cast<uint16_t*>(dst)[c] = f32_to_bf16(v[c]);
  }
}

size_t elem_bytes(DType dt) { return dt == DType::kFloat32 ? 4 : 2; }

}  // namespace

Status kv_append_cpu(const KvAttentionParams& p, int64_t b, int64_t h) {
  if (p.k_new == nullptr) return Status::kOk;
  if (p.dtype == DType::kFloat16) return Status::kUnsupported;
  const size_t eb = elem_bytes(p.dtype);
  float buf[1024];
  if (p.d > 1024) return Status::kUnsupported;
  const int64_t start = p.cache_seqlens[b];
  for (int64_t i = 0; i < p.sq; ++i) {
    const int64_t pos = start + i;
    const int64_t src_off = b * p.new_batch_stride + i * p.new_seq_stride + h * p.new_head_stride;
    const int64_t dst_off = kv_detail::cache_row_offset(p, b, pos, h);
    for (int which = 0; which < 2; ++which) {
      const char* src = static_cast<const char*>(which == 0 ? p.k_new : p.v_new) + src_off * eb;
      void* cache = which == 0 ? p.k_cache : p.v_cache;
      if (!p.cache_int8) {
        std::memcpy(static_cast<char*>(cache) + dst_off * eb, src, p.d * eb);
        continue;
      }
      row_to_f32(src, p.dtype, p.d, buf);
      float amax = 0.f;
      for (int64_t c = 0; c < p.d; ++c) amax = std::max(amax, std::fabs(buf[c]));
      const float scale = amax / 127.f;
      const float divisor = scale > 0.f ? scale : 1.f;
      int8_t* q = static_cast<int8_t*>(cache) + dst_off;
      // nearbyint rounds half to even in the default rounding mode, as torch.round.
      for (int64_t c = 0; c < p.d; ++c) q[c] = static_cast<int8_t>(std::clamp(std::nearbyint(buf[c] / divisor), -127.f, 127.f));
      (which == 0 ? p.k_scale : p.v_scale)[kv_detail::scale_offset(p, b, pos, h)] = scale;
    }
  }
  return Status::kOk;
}

Status kv_attend_scalar(const KvAttentionParams& p, int64_t b, int64_t j0, int64_t j1, float* scratch, KvPartial out) {
  if (p.dtype == DType::kFloat16) return Status::kUnsupported;
  return kv_detail::attend<ScalarOps>(p, b, j0, j1, scratch, out);
}

Status kv_combine_cpu(const KvAttentionParams& p, int64_t b, const KvPartial* parts, int64_t nsplit) {
  const int64_t rows = kv_rows(p), d = p.d;
  const size_t eb = elem_bytes(p.dtype);
  float buf[1024];
  if (d > 1024) return Status::kUnsupported;
  for (int64_t r = 0; r < rows; ++r) {
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t s = 0; s < nsplit; ++s) max = std::max(max, parts[s].row_max[r]);
    std::fill(buf, buf + d, 0.f);
    if (max != -std::numeric_limits<float>::infinity()) {
      float sum = 0.f;
      for (int64_t s = 0; s < nsplit; ++s) {
        const float w = std::exp(parts[s].row_max[r] - max);
        if (w == 0.f) continue;
        sum += w * parts[s].row_sum[r];
        const float* acc = parts[s].acc + r * d;
        for (int64_t c = 0; c < d; ++c) buf[c] += w * acc[c];
      }
      const float inv = 1.f / sum;
      for (int64_t c = 0; c < d; ++c) buf[c] *= inv;
    }
    const int64_t off =
        b * p.out_batch_stride + kv_row_query(p, r) * p.out_seq_stride + kv_row_head(p, r) * p.out_head_stride;
    store_row(static_cast<char*>(p.out) + off * eb, p.dtype, d, buf);
  }
  return Status::kOk;
}

}  // namespace slimops::cpu
