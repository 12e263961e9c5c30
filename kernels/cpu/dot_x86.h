// x86 dot products of weight rows with one row of quantised activations, written once and
// compiled twice: dot_avx2.cpp (AVX2+FMA+F16C) and dot_avx512vnni.cpp (the same code with the
// int8 dot product done by VNNI's vpdpbusd). Everything here has internal linkage so the two
// compilations never mix.
//
// Each kernel computes a tile of R weight rows × T activation rows (tokens): a weight block is
// decoded once for all T tokens and an activation block loaded once for all R rows, and the R·T
// independent accumulators keep the FMA units busy. vec_dot is the 1 × 1 tile. Integer sums inside
// a block are exact; scales are applied per block in float, as the reference does.
//
// Include only from a translation unit compiled with at least -mavx2 -mfma -mf16c, after
// defining EMBER_DOT_VNNI as 0 or 1.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <limits>

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
// requests in flight to reach the memory bandwidth. Into L2 (T1), not L1: a T0 prefetch holds
// one of the core's few L1 miss buffers until its line arrives, which capped one core at about
// 9 GB/s; L2 prefetches let the core keep far more lines in flight. Measured with `ember bench
// kernels` and the 262144 × 640 Q8_0 output matrix of Gemma 3 (2 threads, session 8): T0 at
// 4 KiB 15.6 GB/s; T1 at 4 KiB 27.5, at 16 KiB 27.2, at 32 KiB 30-33 (membw.c: 27-30).
constexpr int kPrefetchBytes = 32768;
template <class Block>
inline void prefetch_ahead(const Block& b) {
  const char* p = reinterpret_cast<const char*>(&b) + kPrefetchBytes;
  for (size_t line = 0; line < sizeof(Block); line += 64) _mm_prefetch(p + line, _MM_HINT_T1);
}

template <class Block>
inline const Block& row_block(const void* w, size_t row_bytes, int r, int64_t i) {
  return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(w) + r * row_bytes)[i];
}

// Where a tile's results go: out[t·out_stride + r].
struct TileOut {
  float* out;
  size_t stride;
  void put(int r, int t, float v) const { out[t * stride + r] = v; }
};

// ---- 32-element family, activations in Q8_0 ----

// How a format's 32 values relate to its integer codes.
enum class Kind {
  kSigned,          // x = d·v, v signed (Q8_0, IQ4_NL through its grid)
  kUnsignedOffset,  // x = d·(v − offset), v unsigned (Q4_0, Q5_0; Q8_0 and IQ4_NL as v + 128
                    // in the 512-bit tiles)
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

template <class F, int R, int T>
void tile_32(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
             TileOut o) {
  const BlockQ8_0* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK; ++i) {
    __m256i act[T], offset_sum[T];
    __m256 da[T], act_sum[T];
    for (int t = 0; t < T; ++t) {
      act[t] = load32(y[t][i].qs);
      da[t] = h2f_broadcast(y[t][i].d);
      // Offsets and minimums multiply Σ a: one dot product per token, shared by the R rows.
      if constexpr (F::kKind == Kind::kUnsignedOffset)
        offset_sum[t] = dot_u8s8(_mm256_set1_epi8(F::kOffset), act[t]);
      if constexpr (F::kKind == Kind::kAffine)
        act_sum[t] =
            _mm256_mul_ps(_mm256_cvtepi32_ps(dot_u8s8(_mm256_set1_epi8(1), act[t])), da[t]);
    }
    for (int r = 0; r < R; ++r) {
      const auto& b = row_block<typename F::Block>(w, row_bytes, r, i);
      prefetch_ahead(b);
      const __m256i v = F::values(b);
      const __m256i v_abs = F::kKind == Kind::kSigned ? _mm256_sign_epi8(v, v) : v;
      const __m256 dw = h2f_broadcast(b.d);
      for (int t = 0; t < T; ++t) {
        __m256i dot;
        if constexpr (F::kKind == Kind::kSigned)
          dot = dot_u8s8(v_abs, _mm256_sign_epi8(act[t], v));
        else
          dot = dot_u8s8(v, act[t]);
        if constexpr (F::kKind == Kind::kUnsignedOffset) dot = _mm256_sub_epi32(dot, offset_sum[t]);
        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dw, da[t]), acc[r][t]);
        if constexpr (F::kKind == Kind::kAffine)
          acc[r][t] = _mm256_fmadd_ps(act_sum[t], h2f_broadcast(b.m), acc[r][t]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) o.put(r, t, hsum(acc[r][t]));
}

// ---- K family, activations in Q8_K ----

template <int T>
inline void q8k_rows(const void* a, size_t act_bytes, const BlockQ8_K* (&y)[T]) {
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(a) + t * act_bytes);
}

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

// The K family's rounding, shared by every kernel that computes it (these tiles, the 512-bit
// tiles and the packed products of dot_avx512vnni.cpp), so that they agree bit for bit. A
// super-block reduces to two exact integers per (row, token):
//   S = Σ_g sc_g · Σ_{i in group g} v_i·a_i     (v the value with any offset applied: q − 32 for
//   Q6_K) M = Σ_g m_g · Σ_{i in group g} a_i          (formats with minimums: Q2_K, Q4_K, Q5_K)
// and then, with one float accumulator per (row, token) and super-blocks in order,
//   acc = fma(float(S), d·d_a, acc);   acc = fma(−float(M), dmin·d_a, acc).
// Integer sums are exact in any order, so each kernel sums them the way its layout allows.

// [Σa, Σb, Σc, Σd] of four vectors of eight int32.
inline __m128i sum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

// Four per-row scalars as lanes. Built in registers: scalar stores followed by one vector load
// stall on store forwarding.
inline __m128 float_lanes(const float (&x)[4]) {
  return _mm_setr_ps(x[0], x[1], x[2], x[3]);
}

// One super-block of a tile of up to four rows × T tokens: each row's scales and, per token,
// its integers as eight partial sums (rows the tile lacks stay zero). add_to() reduces them and
// applies the rounding above to the accumulators (lanes = rows).
template <int T>
struct KSuperblock {
  __m256i s[T][4] = {}, m[T][4] = {};
  float d[4] = {}, dmin[4] = {};

  template <bool kMins>
  void add_to(__m128 (&acc)[T], const BlockQ8_K* const (&y)[T], int64_t i) const {
    const __m128 vd = float_lanes(d), vdmin = float_lanes(dmin);
    for (int t = 0; t < T; ++t) {
      const __m128 va = _mm_set1_ps(y[t][i].d);
      const __m128i st = sum4_epi32(s[t][0], s[t][1], s[t][2], s[t][3]);
      acc[t] = _mm_fmadd_ps(_mm_cvtepi32_ps(st), _mm_mul_ps(vd, va), acc[t]);
      if constexpr (kMins) {
        const __m128i mt = sum4_epi32(m[t][0], m[t][1], m[t][2], m[t][3]);
        acc[t] = _mm_fnmadd_ps(_mm_cvtepi32_ps(mt), _mm_mul_ps(vdmin, va), acc[t]);
      }
    }
  }
};

// The results of a K tile: lane r of acc[t] is (row r, token t).
template <int R, int T>
inline void put_lane_tile(const __m128 (&acc)[T], TileOut o) {
  for (int t = 0; t < T; ++t) {
    alignas(16) float lanes[4];
    _mm_store_ps(lanes, acc[t]);
    for (int r = 0; r < R; ++r) o.put(r, t, lanes[r]);
  }
}

// Σ_g min_g · (sum of group g's 32 activations) as four int32 lanes, widened to eight.
inline __m256i q45k_min_terms(__m128i mins16, __m128i group_sums) {
  return _mm256_zextsi128_si256(_mm_madd_epi16(mins16, group_sums));
}

template <class Block, bool kFifthBit, int R, int T>
void tile_q45_k(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                TileOut o) {
  const BlockQ8_K* y[T];
  q8k_rows<T>(a, act_bytes, y);
  __m128 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  const __m256i low4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    __m128i group_sums[T];
    for (int t = 0; t < T; ++t) group_sums[t] = bsums_by_32(y[t][i]);
    KSuperblock<T> sb;
    for (int r = 0; r < R; ++r) {
      const Block& b = row_block<Block>(w, row_bytes, r, i);
      prefetch_ahead(b);
      uint64_t scales, mins;
      kquant_scales_mins(b.scales, &scales, &mins);
      const __m128i mins16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(mins)));
      __m256i high_bits = _mm256_setzero_si256();
      if constexpr (kFifthBit) high_bits = load32(b.qh);
      __m256i sumi[T];
      for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
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
        const __m256i s_lo = _mm256_set1_epi16(static_cast<short>((scales >> (16 * j)) & 0xff));
        const __m256i s_hi = _mm256_set1_epi16(static_cast<short>((scales >> (16 * j + 8)) & 0xff));
        for (int t = 0; t < T; ++t) {
          sumi[t] =
              _mm256_add_epi32(sumi[t], dot_u8s8_scaled(lo, load32(y[t][i].qs + 64 * j), s_lo));
          sumi[t] = _mm256_add_epi32(sumi[t],
                                     dot_u8s8_scaled(hi, load32(y[t][i].qs + 64 * j + 32), s_hi));
        }
      }
      sb.d[r] = h2f(b.d), sb.dmin[r] = h2f(b.dmin);
      for (int t = 0; t < T; ++t) {
        sb.s[t][r] = sumi[t];
        sb.m[t][r] = q45k_min_terms(mins16, group_sums[t]);
      }
    }
    sb.template add_to<true>(acc, y, i);
  }
  put_lane_tile<R, T>(acc, o);
}

// Q6_K, Q3_K and Q2_K share one shape: sixteen groups of 16 with int16 scales, values decoded
// 32 at a time as unsigned bytes v. Q6_K and Q3_K store v with an offset (x = d·sc·(v − offset)):
// S subtracts offset·Σ_g sc_g·bsum_g. Q2_K has minimums: M = Σ_g min_g·bsum_g.
struct Q6KFormat {
  using Block = BlockQ6_K;
  static constexpr bool kMins = false;
  static constexpr int kOffsetShift = 5;  // offset 32
  struct Decoded {
    __m256i scales16, mins16;  // mins16 unused
    float d, dmin;
  };
  static Decoded decode(const Block& b) {
    __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    return {s, s, h2f(b.d), 0};
  }
  // The 32 values of plane k (0..7: elements 32k..32k+31) as unsigned bytes.
  static __m256i values(const Block& b, int k) {
    int h = k / 4, kk = k % 4;
    __m256i ql = load32(b.ql + 64 * h + 32 * (kk & 1));
    __m256i low = _mm256_and_si256(kk < 2 ? ql : _mm256_srli_epi16(ql, 4), _mm256_set1_epi8(0x0f));
    __m256i high =
        _mm256_and_si256(_mm256_srli_epi16(load32(b.qh + 32 * h), 2 * kk), _mm256_set1_epi8(3));
    return _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
  }
};
struct Q3KFormat {
  using Block = BlockQ3_K;
  static constexpr bool kMins = false;
  static constexpr int kOffsetShift = 2;  // offset 4
  struct Decoded {
    __m256i scales16, mins16;
    float d, dmin;
  };
  static Decoded decode(const Block& b) {
    int8_t sc[16];
    q3k_scales(b.scales, sc);
    __m256i s = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    return {s, s, h2f(b.d), 0};
  }
  static __m256i values(const Block& b, int k) {
    int h = k / 4, s = k % 4;
    __m256i low =
        _mm256_and_si256(_mm256_srli_epi16(load32(b.qs + 32 * h), 2 * s), _mm256_set1_epi8(3));
    __m256i high = _mm256_and_si256(_mm256_srli_epi16(load32(b.hmask), k), _mm256_set1_epi8(1));
    return _mm256_or_si256(low, _mm256_slli_epi16(high, 2));
  }
};
struct Q2KFormat {
  using Block = BlockQ2_K;
  static constexpr bool kMins = true;
  static constexpr int kOffsetShift = -1;  // no offset
  struct Decoded {
    __m256i scales16, mins16;
    float d, dmin;
  };
  static Decoded decode(const Block& b) {
    __m256i packed =
        _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
    return {_mm256_and_si256(packed, _mm256_set1_epi16(0x0f)), _mm256_srli_epi16(packed, 4),
            h2f(b.d), h2f(b.dmin)};
  }
  static __m256i values(const Block& b, int k) {
    int h = k / 4, s = k % 4;
    return _mm256_and_si256(_mm256_srli_epi16(load32(b.qs + 32 * h), 2 * s), _mm256_set1_epi8(3));
  }
};

template <class F, int R, int T>
void tile_k16(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
              TileOut o) {
  const BlockQ8_K* y[T];
  q8k_rows<T>(a, act_bytes, y);
  __m128 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    __m256i bsums[T];
    for (int t = 0; t < T; ++t) bsums[t] = load32(y[t][i].bsums);
    KSuperblock<T> sb;
    for (int r = 0; r < R; ++r) {
      const auto& b = row_block<typename F::Block>(w, row_bytes, r, i);
      prefetch_ahead(b);
      const typename F::Decoded dec = F::decode(b);
      const ScalePairs pairs(dec.scales16);
      __m256i sumi[T];
      for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
      for (int k = 0; k < 8; ++k) {
        const __m256i q = F::values(b, k);
        const __m256i scale = pairs.pair(k);
        for (int t = 0; t < T; ++t)
          sumi[t] =
              _mm256_add_epi32(sumi[t], dot_u8s8_scaled(q, load32(y[t][i].qs + 32 * k), scale));
      }
      sb.d[r] = dec.d, sb.dmin[r] = dec.dmin;
      for (int t = 0; t < T; ++t) {
        if constexpr (F::kMins) {
          sb.s[t][r] = sumi[t];
          sb.m[t][r] = _mm256_madd_epi16(dec.mins16, bsums[t]);
        } else {
          const __m256i offset_terms =
              _mm256_slli_epi32(_mm256_madd_epi16(dec.scales16, bsums[t]), F::kOffsetShift);
          sb.s[t][r] = _mm256_sub_epi32(sumi[t], offset_terms);
        }
      }
    }
    sb.template add_to<F::kMins>(acc, y, i);
  }
  put_lane_tile<R, T>(acc, o);
}

template <int R, int T>
void tile_iq4_xs(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                 TileOut o) {
  const BlockQ8_K* y[T];
  q8k_rows<T>(a, act_bytes, y);
  const __m256i table = iq4_table();
  __m128 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    KSuperblock<T> sb;
    for (int r = 0; r < R; ++r) {
      const BlockIQ4_XS& b = row_block<BlockIQ4_XS>(w, row_bytes, r, i);
      prefetch_ahead(b);
      __m256i sumi[T];
      for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
      for (int g = 0; g < 8; ++g) {
        int low = (b.scales_l[g / 2] >> (4 * (g % 2))) & 0x0f;
        int high = (b.scales_h >> (2 * g)) & 3;
        const __m256i scale = _mm256_set1_epi32((low | (high << 4)) - 32);
        const __m256i q = _mm256_shuffle_epi8(table, unpack_nibbles(b.qs + 16 * g));
        const __m256i q_abs = _mm256_sign_epi8(q, q);
        for (int t = 0; t < T; ++t) {
          __m256i p = dot_u8s8(q_abs, _mm256_sign_epi8(load32(y[t][i].qs + 32 * g), q));
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_mullo_epi32(p, scale));
        }
      }
      sb.d[r] = h2f(b.d);
      for (int t = 0; t < T; ++t) sb.s[t][r] = sumi[t];
    }
    sb.template add_to<false>(acc, y, i);
  }
  put_lane_tile<R, T>(acc, o);
}

// ---- float weights (activations stay float32) ----

template <class Load8, class Load1, int R, int T>
void tile_float(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                TileOut o) {
  const float* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const float*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  const uint8_t* row[R];
  for (int r = 0; r < R; ++r) row[r] = static_cast<const uint8_t*>(w) + r * row_bytes;
  __m256 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int r = 0; r < R; ++r) {
      const __m256 x = Load8::load(row[r], i);
      for (int t = 0; t < T; ++t)
        acc[r][t] = _mm256_fmadd_ps(x, _mm256_loadu_ps(y[t] + i), acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) {
      float sum = hsum(acc[r][t]);
      for (int64_t j = i; j < n; ++j) sum += Load1::load(row[r], j) * y[t][j];
      o.put(r, t, sum);
    }
}

struct LoadF32 {
  static __m256 load(const uint8_t* p, int64_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p) + i);
  }
};
struct LoadF32One {
  static float load(const uint8_t* p, int64_t i) { return reinterpret_cast<const float*>(p)[i]; }
};
struct LoadF16 {
  static __m256 load(const uint8_t* p, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i)));
  }
};
struct LoadF16One {
  static float load(const uint8_t* p, int64_t i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return h2f(h);
  }
};
struct LoadBF16 {
  static __m256 load(const uint8_t* p, int64_t i) {
    __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
};
struct LoadBF16One {
  static float load(const uint8_t* p, int64_t i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    return bf16_to_f32(h);
  }
};

// ---- the table ----

using TileFn = void (*)(int64_t, const void*, size_t, const void*, size_t, TileOut);

// A kernel family as `Family::template Tile<R, T>::fn`.
template <class F>
struct Rows32 {
  template <int R, int T>
  static constexpr TileFn fn = tile_32<F, R, T>;
};
template <class Block, bool kFifth>
struct RowsQ45K {
  template <int R, int T>
  static constexpr TileFn fn = tile_q45_k<Block, kFifth, R, T>;
};
template <class F>
struct RowsK16 {
  template <int R, int T>
  static constexpr TileFn fn = tile_k16<F, R, T>;
};
struct RowsIQ4XS {
  template <int R, int T>
  static constexpr TileFn fn = tile_iq4_xs<R, T>;
};
template <class Load8, class Load1>
struct RowsFloat {
  template <int R, int T>
  static constexpr TileFn fn = tile_float<Load8, Load1, R, T>;
};

template <class Family>
float single(int64_t n, const void* w, const void* a) {
  float out;
  Family::template fn<1, 1>(n, w, 0, a, 0, TileOut{&out, 1});
  return out;
}

template <class Family>
void tile(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes, int tokens,
          float* out, size_t out_stride) {
  static_assert(kTileRows == 4 && kTileTokens == 4);
  TileOut o{out, out_stride};
  switch (tokens) {
    case 1:
      return Family::template fn<4, 1>(n, w, row_bytes, a, act_bytes, o);
    case 2:
      return Family::template fn<4, 2>(n, w, row_bytes, a, act_bytes, o);
    case 3:
      return Family::template fn<4, 3>(n, w, row_bytes, a, act_bytes, o);
    default:
      return Family::template fn<4, 4>(n, w, row_bytes, a, act_bytes, o);
  }
}

struct X86Kernels {
  VecDotFn vec_dot;
  DotTileFn dot_tile;
};

template <class Family>
constexpr X86Kernels kernels_of() {
  return {single<Family>, tile<Family>};
}

[[maybe_unused]] X86Kernels x86_kernels(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::F32:
      return kernels_of<RowsFloat<LoadF32, LoadF32One>>();
    case TensorType::F16:
      return kernels_of<RowsFloat<LoadF16, LoadF16One>>();
    case TensorType::BF16:
      return kernels_of<RowsFloat<LoadBF16, LoadBF16One>>();
    case TensorType::Q4_0:
      return kernels_of<Rows32<Q4_0Format>>();
    case TensorType::Q4_1:
      return kernels_of<Rows32<Q4_1Format>>();
    case TensorType::Q5_0:
      return kernels_of<Rows32<Q5_0Format>>();
    case TensorType::Q5_1:
      return kernels_of<Rows32<Q5_1Format>>();
    case TensorType::Q8_0:
      return kernels_of<Rows32<Q8_0Format>>();
    case TensorType::IQ4_NL:
      return kernels_of<Rows32<IQ4_NLFormat>>();
    case TensorType::Q2_K:
      return kernels_of<RowsK16<Q2KFormat>>();
    case TensorType::Q3_K:
      return kernels_of<RowsK16<Q3KFormat>>();
    case TensorType::Q4_K:
      return kernels_of<RowsQ45K<BlockQ4_K, false>>();
    case TensorType::Q5_K:
      return kernels_of<RowsQ45K<BlockQ5_K, true>>();
    case TensorType::Q6_K:
      return kernels_of<RowsK16<Q6KFormat>>();
    case TensorType::IQ4_XS:
      return kernels_of<RowsIQ4XS>();
    default:
      return {nullptr, nullptr};
  }
}

// ---- float vector primitives ----

void fp16_row_to_f32(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = h2f(x[i]);
}

void f32_row_to_fp16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}

float dot_f32_rows(const float* x, const float* y, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8)
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// e^x for eight lanes: x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its Taylor series to r⁶
// (relative error below 2e-7 there), times 2^n built in the exponent bits. x is clamped to
// [−87, 89]: below −87, e^x is under 1.7e-38, far under any activation's resolution (2^n stays
// a normal float); from 88.8 up 2^n is +∞, as e^x is in float, so x / (1 + e^x) is −0 for a very
// negative activation.
inline __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(89.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 in two parts (Cody and Waite), so n·ln 2 is subtracted without losing r's bits.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i pow2n =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n));
}

// x·σ(x) = x / (1 + e^−x).
inline __m256 silu_ps(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(x, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// 0.5·x·(1 + tanh(u)) = x · e^2u / (1 + e^2u) = x / (1 + e^−2u), u = √(2/π)·(x + 0.044715·x³).
inline __m256 gelu_ps(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 minus_2u = _mm256_mul_ps(_mm256_set1_ps(-2.0f * 0.7978845608028654f),
                                        _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_ps(minus_2u)));
}

template <__m256 (*Act)(__m256)>
void act_mul(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i,
                     _mm256_mul_ps(Act(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i)));
  if (i < n) {  // the tail through a padded register, so every element takes the same path
    alignas(32) float g[8] = {}, u[8] = {};
    std::memcpy(g, gate + i, (n - i) * sizeof(float));
    std::memcpy(u, up + i, (n - i) * sizeof(float));
    _mm256_store_ps(g, _mm256_mul_ps(Act(_mm256_load_ps(g)), _mm256_load_ps(u)));
    std::memcpy(out + i, g, (n - i) * sizeof(float));
  }
}

// Two passes: the largest value (a lane keeps its maximum when x is NaN, since max_ps returns
// its second operand if either is NaN), then the first lane equal to it (a NaN equals nothing).
int64_t argmax_f32(const float* x, int64_t n) {
  const float lowest = -std::numeric_limits<float>::infinity();
  __m256 m0 = _mm256_set1_ps(lowest), m1 = m0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(_mm256_max_ps(m0, m1)),
                        _mm256_extractf128_ps(_mm256_max_ps(m0, m1), 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  float m = _mm_cvtss_f32(h);
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  const __m256 target = _mm256_set1_ps(m);
  for (i = 0; i + 8 <= n; i += 8)
    if (const int hit =
            _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ)))
      return i + __builtin_ctz(static_cast<unsigned>(hit));
  for (; i < n; ++i)
    if (x[i] == m) return i;
  return 0;  // every value NaN
}

constexpr VectorOps kX86VectorOps = {fp16_row_to_f32,  f32_row_to_fp16,  dot_f32_rows, axpy_f32,
                                     act_mul<silu_ps>, act_mul<gelu_ps>, argmax_f32};

}  // namespace
}  // namespace ember::cpu
