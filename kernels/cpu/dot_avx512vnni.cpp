// The x86 dot products with AVX-512 VNNI: the shared 256-bit kernels of dot_x86.h (with vpdpbusd
// for the int8 products), and 512-bit tiles for the 32-element family, which take two blocks
// per instruction. Those formats spend the most instructions per byte (a scale per 32 values),
// so they gain the most from the wider registers, in generation as in prompt processing.
#define EMBER_DOT_VNNI 1
#include "kernels/cpu/dot_x86.h"
#include "kernels/cpu/fp16.h"

namespace ember::cpu {
namespace {

// Two consecutive blocks' 32-byte values side by side: [block i | block i+1].
inline __m512i join(__m256i a, __m256i b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

// Two fp16 scales as 16 floats: [a ×8 | b ×8].
inline __m512 scale_pair(uint16_t a, uint16_t b) {
  return _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16(static_cast<short>(b)),
                                          _mm_set1_epi16(static_cast<short>(a))));
}

// The nibbles of two 16-byte blocks in element order: [lo_a, hi_a, lo_b, hi_b] (16 bytes each).
inline __m512i nibbles_pair(const uint8_t* a, const uint8_t* b) {
  __m256i both = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)),
                                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(a)));
  const __m512i lanes = _mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0);
  __m512i z = _mm512_permutexvar_epi64(lanes, _mm512_castsi256_si512(both));  // [a, a, b, b]
  z = _mm512_mask_srli_epi16(z, 0xFF00FF00u, z, 4);  // high nibbles in lanes 1, 3
  return _mm512_and_si512(z, _mm512_set1_epi8(0x0f));
}

inline __m512i fifth_bits_pair(const uint8_t* qh_a, const uint8_t* qh_b) {
  uint32_t a, b;
  std::memcpy(&a, qh_a, 4);
  std::memcpy(&b, qh_b, 4);
  return _mm512_maskz_mov_epi8(static_cast<__mmask64>(a) | (static_cast<__mmask64>(b) << 32),
                               _mm512_set1_epi8(0x10));
}

struct ZQ4_0 : Q4_0Format {
  static __m512i values2(const Block& a, const Block& b) { return nibbles_pair(a.qs, b.qs); }
};
struct ZQ4_1 : Q4_1Format {
  static __m512i values2(const Block& a, const Block& b) { return nibbles_pair(a.qs, b.qs); }
};
struct ZQ5_0 : Q5_0Format {
  static __m512i values2(const Block& a, const Block& b) {
    return _mm512_or_si512(nibbles_pair(a.qs, b.qs), fifth_bits_pair(a.qh, b.qh));
  }
};
struct ZQ5_1 : Q5_1Format {
  static __m512i values2(const Block& a, const Block& b) {
    return _mm512_or_si512(nibbles_pair(a.qs, b.qs), fifth_bits_pair(a.qh, b.qh));
  }
};
// The signed formats as unsigned values with an offset of 128 (v + 128 = v ^ 0x80): one xor
// replaces taking |v| and moving v's sign onto the activations (three instructions on the two
// ports that run 512-bit integer work), and the integers are the same.
struct ZQ8_0 : Q8_0Format {
  static constexpr Kind kKind = Kind::kUnsignedOffset;
  static constexpr int kOffset = 128;
  static __m512i values2(const Block& a, const Block& b) {
    return _mm512_xor_si512(join(load32(a.qs), load32(b.qs)), _mm512_set1_epi8(char(0x80)));
  }
};
struct ZIQ4_NL : IQ4_NLFormat {
  static constexpr Kind kKind = Kind::kUnsignedOffset;
  static constexpr int kOffset = 128;
  static __m512i values2(const Block& a, const Block& b) {
    const __m512i table = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4Values))),
        _mm512_set1_epi8(char(0x80)));
    return _mm512_shuffle_epi8(table, nibbles_pair(a.qs, b.qs));
  }
};

inline __m512i dot512_u8s8(__m512i u, __m512i s) {
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
}

// The 32-element family at this level rounds per block: one float accumulator per (row, token)
// and, block by block,
//   acc = fma(float(D), d·d_a, acc)        then, for Q4_1/Q5_1,   acc = fma(float(A), m·d_a, acc)
// with D = Σ v·a the block's exact integer dot product (v with any offset applied: q − 8 for
// Q4_0) and A = Σ a. The packed products (gemm_avx512.cpp) compute the same integers with
// tokens in lanes and the same float operations, so prompt processing and generation agree bit
// for bit.

// Four rows' dot-product lanes of two blocks (lanes 0..7 block 0, 8..15 block 1) summed per
// block: [block 0: rows 0..3 | block 1: rows 0..3].
inline __m256i block_sums4(__m512i d0, __m512i d1, __m512i d2, __m512i d3) {
  const __m512i t01 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(d0, d1), _mm512_unpackhi_epi32(d0, d1));
  const __m512i t23 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(d2, d3), _mm512_unpackhi_epi32(d2, d3));
  // Each 128-bit lane of u: four lanes of one block summed, for rows 0..3.
  const __m512i u =
      _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
  const __m512i v = _mm512_add_epi32(u, _mm512_shuffle_i32x4(u, u, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_castsi512_si256(_mm512_shuffle_i32x4(v, v, _MM_SHUFFLE(0, 0, 2, 0)));
}

inline __m128i fp16_lanes(const uint16_t (&h)[8]) {
  return _mm_setr_epi16(static_cast<short>(h[0]), static_cast<short>(h[1]),
                        static_cast<short>(h[2]), static_cast<short>(h[3]),
                        static_cast<short>(h[4]), static_cast<short>(h[5]),
                        static_cast<short>(h[6]), static_cast<short>(h[7]));
}

// The sums of lanes 0..7 and of lanes 8..15 of x, as floats in four lanes each:
// [Σ lanes 0..7 ×4 | Σ lanes 8..15 ×4].
inline __m256 half_sums_x4(__m512i x) {
  x = _mm512_add_epi32(x, _mm512_shuffle_i32x4(x, x, _MM_SHUFFLE(2, 3, 0, 1)));
  x = _mm512_add_epi32(x, _mm512_shuffle_epi32(x, _MM_PERM_BADC));
  x = _mm512_add_epi32(x, _mm512_shuffle_epi32(x, _MM_PERM_CDAB));
  // Every lane of 128-bit lanes 0 and 2 now holds the sum of its half.
  return _mm256_cvtepi32_ps(
      _mm512_castsi512_si256(_mm512_shuffle_i32x4(x, x, _MM_SHUFFLE(0, 0, 2, 0))));
}

template <class F, int R, int T>
void tile_32_zmm(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                 TileOut o) {
  using Block = typename F::Block;
  constexpr bool kAffine = F::kKind == Kind::kAffine;
  const BlockQ8_0* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  __m128 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  const int64_t blocks = n / kQK;
  for (int64_t i = 0; i < blocks; i += 2) {
    const int64_t i1 = i + 1 < blocks ? i + 1 : i;  // an odd last block is paired with itself
    __m512i act[T], offset_sum[T];
    for (int t = 0; t < T; ++t) {
      act[t] = join(load32(y[t][i].qs), load32(y[t][i1].qs));
      // −offset·Σa seeds the dot product, so vpdpbusd alone yields Σ (v − offset)·a.
      if constexpr (F::kKind == Kind::kUnsignedOffset)
        offset_sum[t] =
            _mm512_sub_epi32(_mm512_setzero_si512(),
                             dot512_u8s8(_mm512_set1_epi8(static_cast<char>(F::kOffset)), act[t]));
    }
    __m512i dot[T][4] = {};
    // fp16 scales [block i: rows 0..3 | block i1: rows 0..3], gathered in registers: a round
    // trip through memory (scalar stores, one vector load) stalls on store forwarding.
    uint16_t dw[8] = {}, dm[8] = {};
    for (int r = 0; r < R; ++r) {
      const Block& b0 = row_block<Block>(w, row_bytes, r, i);
      const Block& b1 = row_block<Block>(w, row_bytes, r, i1);
      prefetch_ahead(b0);
      prefetch_ahead(b1);
      const __m512i v = F::values2(b0, b1);
      dw[r] = b0.d, dw[4 + r] = b1.d;
      if constexpr (kAffine) dm[r] = b0.m, dm[4 + r] = b1.m;
      for (int t = 0; t < T; ++t) {
        static_assert(F::kKind != Kind::kSigned, "signed formats take an offset here (ZQ8_0)");
        if constexpr (F::kKind == Kind::kUnsignedOffset) {
          dot[t][r] = _mm512_dpbusd_epi32(offset_sum[t], v, act[t]);
        } else {
          dot[t][r] = dot512_u8s8(v, act[t]);
        }
      }
    }
    const __m256 dw8 = _mm256_cvtph_ps(fp16_lanes(dw));
    __m256 dm8 = _mm256_setzero_ps();
    if constexpr (kAffine) dm8 = _mm256_cvtph_ps(fp16_lanes(dm));
    for (int t = 0; t < T; ++t) {
      const __m256 da =
          _mm256_cvtph_ps(_mm_unpacklo_epi64(_mm_set1_epi16(static_cast<short>(y[t][i].d)),
                                             _mm_set1_epi16(static_cast<short>(y[t][i1].d))));
      const __m256 d = _mm256_cvtepi32_ps(block_sums4(dot[t][0], dot[t][1], dot[t][2], dot[t][3]));
      const __m256 scale = _mm256_mul_ps(dw8, da);
      __m256 act_sums = _mm256_setzero_ps();  // Σa of block i ×4 | of block i1 ×4
      __m256 min_scale = _mm256_setzero_ps();
      if constexpr (kAffine) {
        act_sums = half_sums_x4(dot512_u8s8(_mm512_set1_epi8(1), act[t]));
        min_scale = _mm256_mul_ps(dm8, da);
      }
      for (int h = 0; h < (i1 != i ? 2 : 1); ++h) {
        const __m128 dh = h ? _mm256_extractf128_ps(d, 1) : _mm256_castps256_ps128(d);
        const __m128 sh = h ? _mm256_extractf128_ps(scale, 1) : _mm256_castps256_ps128(scale);
        acc[t] = _mm_fmadd_ps(dh, sh, acc[t]);
        if constexpr (kAffine) {
          const __m128 mh =
              h ? _mm256_extractf128_ps(min_scale, 1) : _mm256_castps256_ps128(min_scale);
          const __m128 ah =
              h ? _mm256_extractf128_ps(act_sums, 1) : _mm256_castps256_ps128(act_sums);
          acc[t] = _mm_fmadd_ps(ah, mh, acc[t]);
        }
      }
    }
  }
  put_lane_tile<R, T>(acc, o);
}

// Q4_K/Q5_K with two 64-value planes per 512-bit step: the same integers as tile_q45_k with half
// the integer instructions, and the same float operations (dot_x86.h), so the same results.
template <class Block, bool kFifthBit, int R, int T>
void tile_q45_k_zmm(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                    TileOut o) {
  const BlockQ8_K* y[T];
  q8k_rows<T>(a, act_bytes, y);
  __m128 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  const __m512i low4 = _mm512_set1_epi8(0x0f), one = _mm512_set1_epi8(1);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    __m128i group_sums[T];
    __m512i act_lo[T][2], act_hi[T][2];  // planes (0,1) and (2,3): first and second 32 values
    for (int t = 0; t < T; ++t) {
      group_sums[t] = bsums_by_32(y[t][i]);
      for (int k = 0; k < 2; ++k) {
        const int8_t* q = y[t][i].qs + 128 * k;
        act_lo[t][k] = join(load32(q), load32(q + 64));
        act_hi[t][k] = join(load32(q + 32), load32(q + 96));
      }
    }
    KSuperblock<T> sb;
    for (int r = 0; r < R; ++r) {
      const Block& b = row_block<Block>(w, row_bytes, r, i);
      prefetch_ahead(b);
      uint64_t scales, mins;
      kquant_scales_mins(b.scales, &scales, &mins);
      const __m128i mins16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mins)));
      __m512i high_bits = _mm512_setzero_si512();
      if constexpr (kFifthBit) high_bits = _mm512_broadcast_i64x4(load32(b.qh));
      __m512i sumi[T];
      for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
      for (int k = 0; k < 2; ++k) {  // planes j = 2k (low half) and 2k + 1 (high half)
        const int j = 2 * k;
        const __m512i bytes = join(load32(b.qs + 32 * j), load32(b.qs + 32 * (j + 1)));
        __m512i lo = _mm512_and_si512(bytes, low4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(bytes, 4), low4);
        if constexpr (kFifthBit) {
          const __m512i shift_lo =
              _mm512_inserti64x4(_mm512_set1_epi16(static_cast<short>(2 * j)),
                                 _mm256_set1_epi16(static_cast<short>(2 * j + 2)), 1);
          const __m512i shift_hi = _mm512_add_epi16(shift_lo, _mm512_set1_epi16(1));
          lo = _mm512_or_si512(
              lo,
              _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(high_bits, shift_lo), one), 4));
          hi = _mm512_or_si512(
              hi,
              _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(high_bits, shift_hi), one), 4));
        }
        const auto scale_of = [&](int group) {
          return static_cast<short>((scales >> (8 * group)) & 0xff);
        };
        const __m512i s_lo = _mm512_inserti64x4(_mm512_set1_epi16(scale_of(2 * j)),
                                                _mm256_set1_epi16(scale_of(2 * j + 2)), 1);
        const __m512i s_hi = _mm512_inserti64x4(_mm512_set1_epi16(scale_of(2 * j + 1)),
                                                _mm256_set1_epi16(scale_of(2 * j + 3)), 1);
        for (int t = 0; t < T; ++t) {
          sumi[t] = _mm512_add_epi32(
              sumi[t], _mm512_madd_epi16(_mm512_maddubs_epi16(lo, act_lo[t][k]), s_lo));
          sumi[t] = _mm512_add_epi32(
              sumi[t], _mm512_madd_epi16(_mm512_maddubs_epi16(hi, act_hi[t][k]), s_hi));
        }
      }
      sb.d[r] = h2f(b.d), sb.dmin[r] = h2f(b.dmin);
      for (int t = 0; t < T; ++t) {
        sb.s[t][r] = _mm256_add_epi32(_mm512_castsi512_si256(sumi[t]),
                                      _mm512_extracti64x4_epi64(sumi[t], 1));
        sb.m[t][r] = q45k_min_terms(mins16, group_sums[t]);
      }
    }
    sb.template add_to<true>(acc, y, i);
  }
  put_lane_tile<R, T>(acc, o);
}

template <class Block, bool kFifth>
struct RowsQ45KZmm {
  template <int R, int T>
  static constexpr TileFn fn = tile_q45_k_zmm<Block, kFifth, R, T>;
};

template <class F>
struct Rows32Zmm {
  template <int R, int T>
  static constexpr TileFn fn = tile_32_zmm<F, R, T>;
};

X86Kernels zmm_kernels(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::Q4_0:
      return kernels_of<Rows32Zmm<ZQ4_0>>();
    case TensorType::Q4_1:
      return kernels_of<Rows32Zmm<ZQ4_1>>();
    case TensorType::Q5_0:
      return kernels_of<Rows32Zmm<ZQ5_0>>();
    case TensorType::Q5_1:
      return kernels_of<Rows32Zmm<ZQ5_1>>();
    case TensorType::Q8_0:
      return kernels_of<Rows32Zmm<ZQ8_0>>();
    case TensorType::IQ4_NL:
      return kernels_of<Rows32Zmm<ZIQ4_NL>>();
    case TensorType::Q4_K:
      return kernels_of<RowsQ45KZmm<BlockQ4_K, false>>();
    case TensorType::Q5_K:
      return kernels_of<RowsQ45KZmm<BlockQ5_K, true>>();
    default:
      return x86_kernels(type);
  }
}

}  // namespace

void avx512vnni_kernels(gguf::TensorType type, VecDotFn* vec_dot, DotTileFn* dot_tile) {
  X86Kernels k = zmm_kernels(type);
  *vec_dot = k.vec_dot, *dot_tile = k.dot_tile;
}
namespace {

// std::lround of each lane as int32: the instruction rounds ties to even, the reference (and
// lround) away from zero, so ties are found and moved outwards.
inline __m512i round_half_away(__m512 p) {
  const __m512 nearest = _mm512_roundscale_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 toward_zero = _mm512_roundscale_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __mmask16 tie = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(p, toward_zero)),
                                           _mm512_set1_ps(0.5f), _CMP_EQ_OQ);
  const __m512i sign =
      _mm512_and_si512(_mm512_castps_si512(p), _mm512_castps_si512(_mm512_set1_ps(-0.0f)));
  const __m512 away = _mm512_add_ps(  // ±1 with p's sign
      toward_zero,
      _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1)), sign)));
  return _mm512_cvtps_epi32(_mm512_mask_blend_ps(tie, nearest, away));
}

}  // namespace

// Activations → Q8_0, bit for bit the reference's (reference_quantize.cpp): the same float
// operations and the same rounding.
void quantize_q8_0_avx512(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const __m512 lo = _mm512_loadu_ps(x), hi = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
    const float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    for (int h = 0; h < 2; ++h) {
      const __m512i q = round_half_away(_mm512_mul_ps(h ? hi : lo, _mm512_set1_ps(id)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs + 16 * h), _mm512_cvtepi32_epi8(q));
    }
  }
}

// Activations → Q8_K, bit for bit the reference's: the scale comes from the first element of
// largest magnitude (with its sign), values are clamped to ±127, bsums are sums of 16.
void quantize_q8_k_avx512(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_K*>(dst);
  constexpr int kVectors = kQKK / 16;
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    __m512 amax = _mm512_setzero_ps();
    for (int v = 0; v < kVectors; ++v)
      amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)));
    const float largest = _mm512_reduce_max_ps(amax);
    float max = 0;
    for (int v = 0; v < kVectors; ++v) {
      const __mmask16 at = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)),
                                              _mm512_set1_ps(largest), _CMP_EQ_OQ);
      if (at) {
        max = x[16 * v + __builtin_ctz(at)];
        break;
      }
    }
    std::memset(&b[i], 0, sizeof b[i]);
    if (max == 0) continue;
    const float iscale = -127.0f / max;
    for (int v = 0; v < kVectors; ++v) {
      __m512i q =
          round_half_away(_mm512_mul_ps(_mm512_set1_ps(iscale), _mm512_loadu_ps(x + 16 * v)));
      q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(b[i].qs + 16 * v), _mm512_cvtepi32_epi8(q));
      b[i].bsums[v] = static_cast<int16_t>(_mm512_reduce_add_epi32(q));
    }
    b[i].d = 1.0f / iscale;
  }
}

const PackedGemm* avx512vnni_gemm_32(gguf::TensorType type);  // gemm_avx512.cpp
const PackedGemm* avx512vnni_gemm_k(gguf::TensorType type);   // gemm_avx512.cpp

const PackedGemm* avx512vnni_gemm(gguf::TensorType type) {
  if (const PackedGemm* g = avx512vnni_gemm_32(type)) return g;
  return avx512vnni_gemm_k(type);
}

const VectorOps& avx512vnni_vector_ops() {
  return kX86VectorOps;
}
}  // namespace ember::cpu
