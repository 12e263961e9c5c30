// x86 dot products of weight rows with one row of quantised activations, written once and
// compiled twice: dot_avx2.cpp (AVX2+FMA+F16C) and dot_avx512vnni.cpp (the same code with the
// int8 dot product done by VNNI's vpdpbusd). Everything here has internal linkage so the two
// compilations never mix.
//
// Each kernel handles R rows at once (R = 1 for vec_dot, 4 for vec_dot4): the activation block
// is loaded and its scale converted once for all R rows, and R independent accumulators keep
// the FMA units busy. Integer sums inside a block are exact; scales are applied per block in
// float, as the reference does.
//
// Include only from a translation unit compiled with at least -mavx2 -mfma -mf16c, after
// defining EMBER_DOT_VNNI as 0 or 1.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/kernels.h"

namespace ember::cpu {
namespace {  // internal linkage: one copy per instruction set

constexpr bool kVnni = EMBER_DOT_VNNI;

inline float h2f(uint16_t h) {
  return _cvtsh_ss(h);
}
inline __m256 h2f_broadcast(uint16_t h) {
  return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h)));
}

inline float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 16 bytes of nibbles → 32 bytes: low nibbles in lanes 0..15, high nibbles in lanes 16..31.
inline __m256i unpack_nibbles(const uint8_t* p) {
  __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), _mm256_set1_epi8(0x0f));
}

// 32 bits → 32 bytes, byte j = 0xff where bit j is set.
inline __m256i bits_to_bytes(uint32_t bits) {
  const __m256i byte_of_bit = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                0x0101010101010101, 0x0000000000000000);
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), byte_of_bit);
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, select), select);
}

// Σ u·s over groups of four bytes (u unsigned, s signed) → 8 × int32.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  if constexpr (kVnni)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
  else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// The same for two signed operands: |x| · (y with x's sign).
inline __m256i dot_s8(__m256i x, __m256i y) {
  return dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// Σ u·s with byte lanes 0..15 weighted by the int16 in the low half of `scale` and 16..31 by
// the high half → 8 × int32. u ≤ 63 keeps vpmaddubsw from saturating.
inline __m256i dot_u8s8_scaled(__m256i u, __m256i s, __m256i scale) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale);
}

// The sixteen int16 group scales of a K super-block, handed out in pairs (2m, 2m+1) as the
// `scale` operand of dot_u8s8_scaled: one in-lane byte shuffle per pair.
class ScalePairs {
 public:
  explicit ScalePairs(__m256i scales16)
      : low_(_mm256_permute4x64_epi64(scales16, 0x44)),
        high_(_mm256_permute4x64_epi64(scales16, 0xee)) {}
  __m256i pair(int m) const {
    // Element e of a half lives in bytes 2e, 2e+1; lane 0 takes group 2m, lane 1 group 2m+1.
    const int e0 = (2 * m) % 8, e1 = (2 * m + 1) % 8;
    const __m256i mask = _mm256_setr_epi8(
        2 * e0, 2 * e0 + 1, 2 * e0, 2 * e0 + 1, 2 * e0, 2 * e0 + 1, 2 * e0, 2 * e0 + 1, 2 * e0,
        2 * e0 + 1, 2 * e0, 2 * e0 + 1, 2 * e0, 2 * e0 + 1, 2 * e0, 2 * e0 + 1, 2 * e1, 2 * e1 + 1,
        2 * e1, 2 * e1 + 1, 2 * e1, 2 * e1 + 1, 2 * e1, 2 * e1 + 1, 2 * e1, 2 * e1 + 1, 2 * e1,
        2 * e1 + 1, 2 * e1, 2 * e1 + 1, 2 * e1, 2 * e1 + 1);
    return _mm256_shuffle_epi8(m < 4 ? low_ : high_, mask);
  }

 private:
  __m256i low_, high_;  // groups 0..7 / 8..15 copied into both 128-bit lanes
};

// Weights stream from memory once per token: asking for them this far ahead keeps enough
// requests in flight to reach the memory bandwidth (tuned with `ember bench kernels`).
constexpr int kPrefetchBytes = 4096;
template <class Block>
inline void prefetch_ahead(const Block& b) {
  const char* p = reinterpret_cast<const char*>(&b) + kPrefetchBytes;
  for (size_t line = 0; line < sizeof(Block); line += 64) _mm_prefetch(p + line, _MM_HINT_T0);
}

template <class Block>
inline const Block& row_block(const void* w, size_t row_bytes, int r, int64_t i) {
  return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * row_bytes)[i];
}

// ---- 32-element family, activations in Q8_0 ----

// How a format's 32 values relate to its integer codes.
enum class Kind {
  kSigned,          // x = d·v, v signed (Q8_0, IQ4_NL through its grid)
  kUnsignedOffset,  // x = d·(v − offset), v unsigned (Q4_0, Q5_0)
  kAffine,          // x = d·v + m, v unsigned (Q4_1, Q5_1)
};

inline __m256i q5_values(const uint8_t* qs, const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  __m256i high = _mm256_and_si256(bits_to_bytes(bits), _mm256_set1_epi8(0x10));
  return _mm256_or_si256(unpack_nibbles(qs), high);
}
inline __m256i iq4_table() {
  __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4Values));
  return _mm256_set_m128i(t, t);
}

struct Q4_0Format {
  using Block = BlockQ4_0;
  static constexpr Kind kKind = Kind::kUnsignedOffset;
  static constexpr int kOffset = 8;
  static __m256i values(const Block& b) { return unpack_nibbles(b.qs); }
};
struct Q5_0Format {
  using Block = BlockQ5_0;
  static constexpr Kind kKind = Kind::kUnsignedOffset;
  static constexpr int kOffset = 16;
  static __m256i values(const Block& b) { return q5_values(b.qs, b.qh); }
};
struct Q8_0Format {
  using Block = BlockQ8_0;
  static constexpr Kind kKind = Kind::kSigned;
  static constexpr int kOffset = 0;
  static __m256i values(const Block& b) { return load32(b.qs); }
};
struct IQ4_NLFormat {
  using Block = BlockIQ4_NL;
  static constexpr Kind kKind = Kind::kSigned;
  static constexpr int kOffset = 0;
  static __m256i values(const Block& b) {
    return _mm256_shuffle_epi8(iq4_table(), unpack_nibbles(b.qs));
  }
};
struct Q4_1Format {
  using Block = BlockQ4_1;
  static constexpr Kind kKind = Kind::kAffine;
  static constexpr int kOffset = 0;
  static __m256i values(const Block& b) { return unpack_nibbles(b.qs); }
};
struct Q5_1Format {
  using Block = BlockQ5_1;
  static constexpr Kind kKind = Kind::kAffine;
  static constexpr int kOffset = 0;
  static __m256i values(const Block& b) { return q5_values(b.qs, b.qh); }
};

template <class F, int R>
void dot_rows_32(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  const auto* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK; ++i) {
    const __m256i act = load32(y[i].qs);
    const __m256 da = h2f_broadcast(y[i].d);
    // Offsets and minimums multiply Σ a: one dot product per block, shared by the R rows.
    __m256i offset_sum = _mm256_setzero_si256();
    __m256 act_sum = _mm256_setzero_ps();
    if constexpr (F::kKind == Kind::kUnsignedOffset)
      offset_sum = dot_u8s8(_mm256_set1_epi8(F::kOffset), act);
    if constexpr (F::kKind == Kind::kAffine)
      act_sum = _mm256_mul_ps(_mm256_cvtepi32_ps(dot_u8s8(_mm256_set1_epi8(1), act)), da);
    for (int r = 0; r < R; ++r) {
      const auto& b = row_block<typename F::Block>(w, row_bytes, r, i);
      prefetch_ahead(b);
      __m256i v = F::values(b);
      __m256i dot;
      if constexpr (F::kKind == Kind::kSigned)
        dot = dot_s8(v, act);
      else
        dot = dot_u8s8(v, act);
      if constexpr (F::kKind == Kind::kUnsignedOffset) dot = _mm256_sub_epi32(dot, offset_sum);
      acc[r] =
          _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(h2f_broadcast(b.d), da), acc[r]);
      if constexpr (F::kKind == Kind::kAffine)
        acc[r] = _mm256_fmadd_ps(act_sum, h2f_broadcast(b.m), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// ---- K family, activations in Q8_K ----

// The sixteen bsums of a Q8_K block summed in pairs → 8 × int16 (sums over groups of 32).
inline __m128i bsums_by_32(const BlockQ8_K& y) {
  __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y.bsums));
  __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(y.bsums + 8));
  return _mm_hadd_epi16(lo, hi);
}

// Q4_K/Q5_K six-bit scales and mins: bytes 0..7 of the results are groups 0..7.
inline void kquant_scales_mins(const uint8_t* packed, uint64_t* scales, uint64_t* mins) {
  uint32_t a, b, c;
  std::memcpy(&a, packed, 4);
  std::memcpy(&b, packed + 4, 4);
  std::memcpy(&c, packed + 8, 4);
  uint32_t sc_lo = a & 0x3f3f3f3fu, mn_lo = b & 0x3f3f3f3fu;
  uint32_t sc_hi = (c & 0x0f0f0f0fu) | (((a >> 6) & 0x03030303u) << 4);
  uint32_t mn_hi = ((c >> 4) & 0x0f0f0f0fu) | (((b >> 6) & 0x03030303u) << 4);
  *scales = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  *mins = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
}

template <class Block, bool kFifthBit, int R>
void dot_rows_q45_k(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  const auto* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc[R];
  __m128 acc_min[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), acc_min[r] = _mm_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const __m128i group_sums = bsums_by_32(y[i]);
    for (int r = 0; r < R; ++r) {
      const Block& b = row_block<Block>(w, row_bytes, r, i);
      prefetch_ahead(b);
      uint64_t scales, mins;
      kquant_scales_mins(b.scales, &scales, &mins);
      // Σ_g min_g · Σ_{group g} a, in int32.
      __m128i min_terms = _mm_madd_epi16(
          _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mins))), group_sums);
      __m256i high_bits = _mm256_setzero_si256();
      if constexpr (kFifthBit) high_bits = load32(b.qh);
      __m256i sumi = _mm256_setzero_si256();
      for (int j = 0; j < 4; ++j) {
        __m256i bytes = load32(b.qs + 32 * j);
        __m256i lo = _mm256_and_si256(bytes, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), low4);
        if constexpr (kFifthBit) {
          lo = _mm256_or_si256(
              lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high_bits, 2 * j), one), 4));
          hi = _mm256_or_si256(
              hi,
              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high_bits, 2 * j + 1), one), 4));
        }
        int s_lo = static_cast<int>((scales >> (16 * j)) & 0xff),
            s_hi = static_cast<int>((scales >> (16 * j + 8)) & 0xff);
        sumi = _mm256_add_epi32(sumi, dot_u8s8_scaled(lo, load32(y[i].qs + 64 * j),
                                                      _mm256_set1_epi16(static_cast<short>(s_lo))));
        sumi = _mm256_add_epi32(sumi, dot_u8s8_scaled(hi, load32(y[i].qs + 64 * j + 32),
                                                      _mm256_set1_epi16(static_cast<short>(s_hi))));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(h2f(b.d) * y[i].d), acc[r]);
      acc_min[r] =
          _mm_fmadd_ps(_mm_cvtepi32_ps(min_terms), _mm_set1_ps(h2f(b.dmin) * y[i].d), acc_min[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    __m128 m = acc_min[r];
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    out[r] = hsum(acc[r]) - _mm_cvtss_f32(m);
  }
}

template <int R>
void dot_rows_q6_k(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  const auto* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(3);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const __m256i bsums = load32(y[i].bsums);
    for (int r = 0; r < R; ++r) {
      const BlockQ6_K& b = row_block<BlockQ6_K>(w, row_bytes, r, i);
      prefetch_ahead(b);
      // Values are q − 32 with q in 0..63: subtract 32·Σ_g scale_g·bsum_g once per block.
      __m256i scales16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
      const ScalePairs pairs(scales16);
      __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(scales16, bsums), 5);
      sumi = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
      for (int h = 0; h < 2; ++h) {
        __m256i ql_a = load32(b.ql + 64 * h), ql_b = load32(b.ql + 64 * h + 32);
        __m256i qh = load32(b.qh + 32 * h);
        for (int k = 0; k < 4; ++k) {
          __m256i ql = (k & 1) ? ql_b : ql_a;
          __m256i low = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
          __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two);
          __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
          int g = 8 * h + 2 * k;
          sumi = _mm256_add_epi32(
              sumi, dot_u8s8_scaled(q, load32(y[i].qs + 128 * h + 32 * k), pairs.pair(g / 2)));
        }
      }
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(h2f(b.d) * y[i].d), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

template <int R>
void dot_rows_q2_k(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  const auto* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  const __m256i two_bits = _mm256_set1_epi8(3);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const __m256i bsums = load32(y[i].bsums);
    for (int r = 0; r < R; ++r) {
      const BlockQ2_K& b = row_block<BlockQ2_K>(w, row_bytes, r, i);
      prefetch_ahead(b);
      __m256i packed =
          _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
      __m256i mins = _mm256_srli_epi16(packed, 4);
      const ScalePairs pairs(_mm256_and_si256(packed, _mm256_set1_epi16(0x0f)));
      __m256i min_terms = _mm256_madd_epi16(mins, bsums);
      __m256i sumi = _mm256_setzero_si256();
      for (int h = 0; h < 2; ++h) {
        __m256i bits = load32(b.qs + 32 * h);
        for (int s = 0; s < 4; ++s) {
          __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * s), two_bits);
          int g = 8 * h + 2 * s;
          sumi = _mm256_add_epi32(
              sumi, dot_u8s8_scaled(q, load32(y[i].qs + 128 * h + 32 * s), pairs.pair(g / 2)));
        }
      }
      __m256 d = _mm256_set1_ps(h2f(b.d) * y[i].d), dmin = _mm256_set1_ps(h2f(b.dmin) * y[i].d);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), d, acc[r]);
      acc[r] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(min_terms), dmin, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

template <int R>
void dot_rows_q3_k(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  const auto* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  const __m256i two_bits = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const __m256i bsums = load32(y[i].bsums);
    for (int r = 0; r < R; ++r) {
      const BlockQ3_K& b = row_block<BlockQ3_K>(w, row_bytes, r, i);
      prefetch_ahead(b);
      int8_t sc[16];
      q3k_scales(b.scales, sc);
      // Values are q − 4 with q in 0..7: subtract 4·Σ_g scale_g·bsum_g once per block.
      __m256i scales16 =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
      const ScalePairs pairs(scales16);
      __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(),
                                      _mm256_slli_epi32(_mm256_madd_epi16(scales16, bsums), 2));
      __m256i hmask = load32(b.hmask);
      for (int h = 0; h < 2; ++h) {
        __m256i bits = load32(b.qs + 32 * h);
        for (int s = 0; s < 4; ++s) {
          int plane = 4 * h + s;
          __m256i low = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * s), two_bits);
          __m256i high = _mm256_and_si256(_mm256_srli_epi16(hmask, plane), one);
          __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(high, 2));
          int g = 8 * h + 2 * s;
          sumi = _mm256_add_epi32(
              sumi, dot_u8s8_scaled(q, load32(y[i].qs + 32 * plane), pairs.pair(g / 2)));
        }
      }
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(h2f(b.d) * y[i].d), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

template <int R>
void dot_rows_iq4_xs(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const __m256i table = iq4_table();
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    for (int r = 0; r < R; ++r) {
      const BlockIQ4_XS& b = row_block<BlockIQ4_XS>(w, row_bytes, r, i);
      prefetch_ahead(b);
      __m256i sumi = _mm256_setzero_si256();
      for (int g = 0; g < 8; ++g) {
        int low = (b.scales_l[g / 2] >> (4 * (g % 2))) & 0x0f;
        int high = (b.scales_h >> (2 * g)) & 3;
        int scale = (low | (high << 4)) - 32;
        __m256i q = _mm256_shuffle_epi8(table, unpack_nibbles(b.qs + 16 * g));
        __m256i p = dot_s8(q, load32(y[i].qs + 32 * g));
        sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(p, _mm256_set1_epi32(scale)));
      }
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(h2f(b.d) * y[i].d), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

// ---- float weights (activations stay float32) ----

// Σ x_i·y_i for float-like weights; load8(row, i) widens 8 weights, load1(row, i) one.
template <int R, class Load8, class Load1>
void dot_rows_float(int64_t n, const void* w, size_t row_bytes, const float* y, float* out,
                    Load8 load8, Load1 load1) {
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  auto row = [&](int r) { return static_cast<const uint8_t*>(w) + r * row_bytes; };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(y + i);
    for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(load8(row(r), i), x, acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    out[r] = hsum(acc[r]);
    for (int64_t j = i; j < n; ++j) out[r] += load1(row(r), j) * y[j];
  }
}

template <int R>
void dot_rows_f32(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  dot_rows_float<R>(
      n, w, row_bytes, static_cast<const float*>(a), out,
      [](const uint8_t* p, int64_t i) {
        return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + i);
      },
      [](const uint8_t* p, int64_t i) { return reinterpret_cast<const float*>(p)[i]; });
}

template <int R>
void dot_rows_f16(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  dot_rows_float<R>(
      n, w, row_bytes, static_cast<const float*>(a), out,
      [](const uint8_t* p, int64_t i) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i)));
      },
      [](const uint8_t* p, int64_t i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        return h2f(h);
      });
}

template <int R>
void dot_rows_bf16(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  dot_rows_float<R>(
      n, w, row_bytes, static_cast<const float*>(a), out,
      [](const uint8_t* p, int64_t i) {
        __m256i wide =
            _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
      },
      [](const uint8_t* p, int64_t i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        return bf16_to_f32(h);
      });
}

// ---- the table ----

template <void (*kRows1)(int64_t, const void*, size_t, const void*, float*)>
float single_row(int64_t n, const void* w, const void* a) {
  float out;
  kRows1(n, w, 0, a, &out);
  return out;
}

struct X86Kernels {
  VecDotFn vec_dot;
  VecDot4Fn vec_dot4;
};

template <template <int> class K>
constexpr X86Kernels kernels_of() {
  return {single_row<K<1>::run>, K<4>::run};
}

// Adapters giving every kernel family the same template<int R> shape.
template <class F>
struct Rows32 {
  template <int R>
  struct K {
    static void run(int64_t n, const void* w, size_t rb, const void* a, float* o) {
      dot_rows_32<F, R>(n, w, rb, a, o);
    }
  };
};
template <class Block, bool kFifth>
struct Rows45 {
  template <int R>
  struct K {
    static void run(int64_t n, const void* w, size_t rb, const void* a, float* o) {
      dot_rows_q45_k<Block, kFifth, R>(n, w, rb, a, o);
    }
  };
};
#define EMBER_ROWS_ADAPTER(NAME, FN)                                                \
  template <int R>                                                                  \
  struct NAME {                                                                     \
    static void run(int64_t n, const void* w, size_t rb, const void* a, float* o) { \
      FN<R>(n, w, rb, a, o);                                                        \
    }                                                                               \
  };
EMBER_ROWS_ADAPTER(RowsQ2K, dot_rows_q2_k)
EMBER_ROWS_ADAPTER(RowsQ3K, dot_rows_q3_k)
EMBER_ROWS_ADAPTER(RowsQ6K, dot_rows_q6_k)
EMBER_ROWS_ADAPTER(RowsIQ4XS, dot_rows_iq4_xs)
EMBER_ROWS_ADAPTER(RowsF32, dot_rows_f32)
EMBER_ROWS_ADAPTER(RowsF16, dot_rows_f16)
EMBER_ROWS_ADAPTER(RowsBF16, dot_rows_bf16)
#undef EMBER_ROWS_ADAPTER

X86Kernels x86_kernels(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::F32:
      return kernels_of<RowsF32>();
    case TensorType::F16:
      return kernels_of<RowsF16>();
    case TensorType::BF16:
      return kernels_of<RowsBF16>();
    case TensorType::Q4_0:
      return kernels_of<Rows32<Q4_0Format>::K>();
    case TensorType::Q4_1:
      return kernels_of<Rows32<Q4_1Format>::K>();
    case TensorType::Q5_0:
      return kernels_of<Rows32<Q5_0Format>::K>();
    case TensorType::Q5_1:
      return kernels_of<Rows32<Q5_1Format>::K>();
    case TensorType::Q8_0:
      return kernels_of<Rows32<Q8_0Format>::K>();
    case TensorType::IQ4_NL:
      return kernels_of<Rows32<IQ4_NLFormat>::K>();
    case TensorType::Q2_K:
      return kernels_of<RowsQ2K>();
    case TensorType::Q3_K:
      return kernels_of<RowsQ3K>();
    case TensorType::Q4_K:
      return kernels_of<Rows45<BlockQ4_K, false>::K>();
    case TensorType::Q5_K:
      return kernels_of<Rows45<BlockQ5_K, true>::K>();
    case TensorType::Q6_K:
      return kernels_of<RowsQ6K>();
    case TensorType::IQ4_XS:
      return kernels_of<RowsIQ4XS>();
    default:
      return {nullptr, nullptr};
  }
}

}  // namespace
}  // namespace ember::cpu
