// ARM NEON dot products (baseline ARMv8-A, no dotprod extension needed) for the 32-element
// formats and the K family, as tiles of R weight rows × T tokens like the x86 kernels: a weight
// block is decoded into signed bytes once for all tokens, and each (row, token) product is an
// exact int32 sum scaled per block in float (the K family and IQ4_XS as in dot_x86.h: S and M
// per super-block, one float accumulator per row and token).
#if defined(__aarch64__)
#include <arm_neon.h>

#include <cmath>

#include <cstring>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/decoded_rows.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/kernels.h"

namespace ember::cpu {
namespace {

// 32 values as two int8x16 (elements 0..15, 16..31).
struct Values {
  int8x16_t lo, hi;
};

inline Values nibbles(const uint8_t* qs, int offset) {
  const uint8x16_t bytes = vld1q_u8(qs);
  const int8x16_t off = vdupq_n_s8(static_cast<int8_t>(offset));
  return {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(bytes, vdupq_n_u8(0x0f))), off),
          vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(bytes, 4)), off)};
}

// Adds bit j of the 32-bit qh (little-endian) as bit 4 of element j.
inline Values with_fifth_bit(Values v, const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  int8_t lo[16], hi[16];
  for (int j = 0; j < 16; ++j) {
    lo[j] = static_cast<int8_t>(((bits >> j) & 1) << 4);
    hi[j] = static_cast<int8_t>(((bits >> (j + 16)) & 1) << 4);
  }
  return {vaddq_s8(v.lo, vld1q_s8(lo)), vaddq_s8(v.hi, vld1q_s8(hi))};
}

// Σ v·a over 32 int8 pairs.
inline int32_t dot32(const Values& v, const int8_t* a) {
  const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
  int16x8_t p0 = vmull_s8(vget_low_s8(v.lo), vget_low_s8(a0));
  p0 = vmlal_s8(p0, vget_high_s8(v.lo), vget_high_s8(a0));
  int16x8_t p1 = vmull_s8(vget_low_s8(v.hi), vget_low_s8(a1));
  p1 = vmlal_s8(p1, vget_high_s8(v.hi), vget_high_s8(a1));
  return vaddvq_s32(vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)));
}

inline int32_t sum32(const int8_t* a) {
  return vaddvq_s16(vaddq_s16(vpaddlq_s8(vld1q_s8(a)), vpaddlq_s8(vld1q_s8(a + 16))));
}

// Each format: signed values of a block, its scale, and its minimum (0 when it has none).
struct NQ4_0 {
  using Block = BlockQ4_0;
  static Values values(const Block& b) { return nibbles(b.qs, 8); }
  static float min(const Block&) { return 0; }
};
struct NQ4_1 {
  using Block = BlockQ4_1;
  static Values values(const Block& b) { return nibbles(b.qs, 0); }
  static float min(const Block& b) { return fp16_to_f32(b.m); }
};
struct NQ5_0 {
  using Block = BlockQ5_0;
  static Values values(const Block& b) {
    Values v = with_fifth_bit(nibbles(b.qs, 0), b.qh);
    return {vsubq_s8(v.lo, vdupq_n_s8(16)), vsubq_s8(v.hi, vdupq_n_s8(16))};
  }
  static float min(const Block&) { return 0; }
};
struct NQ5_1 {
  using Block = BlockQ5_1;
  static Values values(const Block& b) { return with_fifth_bit(nibbles(b.qs, 0), b.qh); }
  static float min(const Block& b) { return fp16_to_f32(b.m); }
};
struct NQ8_0 {
  using Block = BlockQ8_0;
  static Values values(const Block& b) { return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}; }
  static float min(const Block&) { return 0; }
};
struct NIQ4_NL {
  using Block = BlockIQ4_NL;
  static Values values(const Block& b) {
    const int8x16_t table = vld1q_s8(kIQ4Values);
    const uint8x16_t bytes = vld1q_u8(b.qs);
    return {vqtbl1q_s8(table, vandq_u8(bytes, vdupq_n_u8(0x0f))),
            vqtbl1q_s8(table, vshrq_n_u8(bytes, 4))};
  }
  static float min(const Block&) { return 0; }
};

template <class F, int R, int T>
void tile_32(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
             float* out, size_t out_stride) {
  using Block = typename F::Block;
  const BlockQ8_0* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  float acc[R][T] = {};
  for (int64_t i = 0; i < n / kQK; ++i) {
    float da[T], act_sum[T];
    for (int t = 0; t < T; ++t) {
      da[t] = fp16_to_f32(y[t][i].d);
      act_sum[t] = da[t] * static_cast<float>(sum32(y[t][i].qs));
    }
    for (int r = 0; r < R; ++r) {
      const Block& b =
          reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * row_bytes)[i];
      const Values v = F::values(b);
      const float dw = fp16_to_f32(b.d), m = F::min(b);
      // Explicit fused operations: the compiler may not contract the tile sizes differently,
      // so a token's result is the same in every tile (and in vec_dot).
      for (int t = 0; t < T; ++t) {
        const float scale = dw * da[t];
        acc[r][t] = std::fma(scale, static_cast<float>(dot32(v, y[t][i].qs)), acc[r][t]);
        acc[r][t] = std::fma(m, act_sum[t], acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * out_stride + r] = acc[r][t];
}

// Σ v·a over 16 int8 pairs (each int16 lane holds two products: no overflow).
inline int32_t dot16(const int8_t* v, const int8_t* a) {
  const int8x16_t v0 = vld1q_s8(v), a0 = vld1q_s8(a);
  int16x8_t p = vmull_s8(vget_low_s8(v0), vget_low_s8(a0));
  p = vmlal_s8(p, vget_high_s8(v0), vget_high_s8(a0));
  return vaddlvq_s16(p);
}

template <class F, int R, int T>
void tile_k(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes, float* out,
            size_t out_stride) {
  constexpr int kGroupElems = kQKK / F::kGroups;
  const BlockQ8_K* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  float acc[R][T] = {};
  DecodedRow row;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    for (int r = 0; r < R; ++r) {
      F::decode(reinterpret_cast<const typename F::Block*>(static_cast<const uint8_t*>(w) +
                                                           r * row_bytes)[i],
                row);
      for (int t = 0; t < T; ++t) {
        int32_t s = 0;
        for (int g = 0; g < F::kGroups; ++g) {
          int32_t dot = 0;
          for (int e = 0; e < kGroupElems; e += 16)
            dot += dot16(row.v + g * kGroupElems + e, y[t][i].qs + g * kGroupElems + e);
          s += row.scale[g] * dot;
        }
        acc[r][t] = std::fma(static_cast<float>(s), row.d * y[t][i].d, acc[r][t]);
        if constexpr (F::kMinElems > 0) {
          constexpr int kSixteens = F::kMinElems / 16;
          int32_t m = 0;
          for (int h = 0; h < kQKK / F::kMinElems; ++h)
            for (int k = 0; k < kSixteens; ++k) m += row.min[h] * y[t][i].bsums[h * kSixteens + k];
          acc[r][t] = std::fma(static_cast<float>(m), row.m * y[t][i].d, acc[r][t]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) out[t * out_stride + r] = acc[r][t];
}

// The tile functions of a family as `Family::template fn<R, T>`.
template <class F>
struct Rows32 {
  template <int R, int T>
  static void fn(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                 float* out, size_t out_stride) {
    tile_32<F, R, T>(n, w, row_bytes, a, act_bytes, out, out_stride);
  }
};
template <class F>
struct RowsK {
  template <int R, int T>
  static void fn(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                 float* out, size_t out_stride) {
    tile_k<F, R, T>(n, w, row_bytes, a, act_bytes, out, out_stride);
  }
};

template <class Family>
float vec_dot(int64_t n, const void* w, const void* a) {
  float out;
  Family::template fn<1, 1>(n, w, 0, a, 0, &out, 1);
  return out;
}

template <class Family>
void dot_tile(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
              int tokens, float* out, size_t out_stride) {
  static_assert(kTileRows == 4 && kTileTokens == 4);
  switch (tokens) {
    case 1:
      return Family::template fn<4, 1>(n, w, row_bytes, a, act_bytes, out, out_stride);
    case 2:
      return Family::template fn<4, 2>(n, w, row_bytes, a, act_bytes, out, out_stride);
    case 3:
      return Family::template fn<4, 3>(n, w, row_bytes, a, act_bytes, out, out_stride);
    default:
      return Family::template fn<4, 4>(n, w, row_bytes, a, act_bytes, out, out_stride);
  }
}

template <class Family>
void set(VecDotFn* v, DotTileFn* t) {
  *v = vec_dot<Family>;
  *t = dot_tile<Family>;
}

}  // namespace

void neon_kernels(gguf::TensorType type, VecDotFn* vec_dot, DotTileFn* dot_tile) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::Q4_0:
      return set<Rows32<NQ4_0>>(vec_dot, dot_tile);
    case TensorType::Q4_1:
      return set<Rows32<NQ4_1>>(vec_dot, dot_tile);
    case TensorType::Q5_0:
      return set<Rows32<NQ5_0>>(vec_dot, dot_tile);
    case TensorType::Q5_1:
      return set<Rows32<NQ5_1>>(vec_dot, dot_tile);
    case TensorType::Q8_0:
      return set<Rows32<NQ8_0>>(vec_dot, dot_tile);
    case TensorType::IQ4_NL:
      return set<Rows32<NIQ4_NL>>(vec_dot, dot_tile);
    case TensorType::Q2_K:
      return set<RowsK<K2Rows>>(vec_dot, dot_tile);
    case TensorType::Q3_K:
      return set<RowsK<K3Rows>>(vec_dot, dot_tile);
    case TensorType::Q4_K:
      return set<RowsK<K4Rows>>(vec_dot, dot_tile);
    case TensorType::Q5_K:
      return set<RowsK<K5Rows>>(vec_dot, dot_tile);
    case TensorType::Q6_K:
      return set<RowsK<K6Rows>>(vec_dot, dot_tile);
    case TensorType::IQ4_XS:
      return set<RowsK<IQ4XSRows>>(vec_dot, dot_tile);
    default:
      *vec_dot = nullptr, *dot_tile = nullptr;
  }
}

}  // namespace ember::cpu
#endif  // __aarch64__
