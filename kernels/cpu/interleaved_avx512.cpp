// Interleaved weights for generation with AVX-512 VNNI (InterleavedKernels, kernels.h): Q4_0,
// Q4_1, Q5_0, Q5_1 and Q8_0 (activations Q8_0), Q4_K and Q6_K (activations Q8_K): the usual
// types of Q4_0, Q4_1, Q8_0 and Q4_K_M files (Q4_K_M keeps Q5_0 or Q8_0 where rows are not whole
// super-blocks, as Gemma 3's 640 columns; Q5_K is not interleaved).
//
// A group is 16 rows. Per block (32 elements, or a K-family super-block of 256) it holds the 16
// rows' fp16 scales side by side, the K family's integer group scales side by side (Q4_K: with
// its minimums, still six bits each), and the values in 64-byte units that hold one 32-bit word
// of each row: 4 consecutive values of row r at bytes 4r..4r+3 (a "chunk"). Against the
// activations' 4 bytes of a chunk broadcast to every lane, one vpdpbusd advances all 16 rows by 4
// elements, lane r holding row r: nothing is permuted or folded, and the rows' scales load as
// one vector and are applied to 16 rows per instruction. Values stay in the blocks' own packing
// (Q4_0, Q4_1, Q4_K: nibbles; Q5_0, Q5_1, Q6_K: nibbles plus bits; Q8_0: bytes, stored q + 128), so
// a unit is a row's word and repacking only moves words; a unit's low and high nibbles are two
// chunks the kernel takes apart. Each format's Group says the order.
//
// Every (row, block) gets exactly the integers of vec_dot and the same float operations, so
// results are bit for bit vec_dot's:
// - 32-element family (dot_avx512vnni.cpp): S = Σ u·a − offset·Σa (offset 8 for Q4_0, 16 for
//   Q5_0, 128 for Q8_0), acc = fma(float(S), d·d_a, acc); Q4_1 and Q5_1: S = Σ u·a, then
//   acc = fma(float(Σa), m·d_a, acc).
//   Σa per (token, block) is summed once per tile call, for all its groups (ActTerms).
// - K family (dot_x86.h's rounding): each group's Σ v·a is multiplied by the rows' integer scales
//   (vpmulld) and summed,
//     S = Σ_g sc_g · Σ_{i∈g} v_i·a_i       (Q6_K: v − 32, the 32·Σa from the activations' bsums)
//     M = Σ_g m_g · Σ_{i∈g} a_i            (Q4_K's minimums, vpdpwssd over the bsums)
//   then acc = fma(float(S), d·d_a, acc), acc = fma(−float(M), dmin·d_a, acc).
// Repacking runs once per weight, when the backend first multiplies with it; unpacking when a
// tied embedding table gives a row (a group at a time) and in tests.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/decoded_rows.h"
#define EMBER_DOT_VNNI 1  // dot_x86.h's helpers (prefetching, bsums) at this level
#include "kernels/cpu/dot_x86.h"
#include "kernels/cpu/kernels.h"

namespace ember::cpu {
namespace {

constexpr int kRows = kInterleaveRows;
static_assert(kRows == 16, "one 32-bit lane per row of a 512-bit register");

// Words [0, words) of each row into `words` units (unit k: row r's word k at 4r), and back.
void rows_to_units(const uint8_t* const (&rows)[kRows], int words, uint8_t* units) {
  for (int k = 0; k < words; ++k)
    for (int r = 0; r < kRows; ++r) std::memcpy(units + 64 * k + 4 * r, rows[r] + 4 * k, 4);
}
void units_to_rows(const uint8_t* units, int words, uint8_t* const (&rows)[kRows]) {
  for (int k = 0; k < words; ++k)
    for (int r = 0; r < kRows; ++r) std::memcpy(rows[r] + 4 * k, units + 64 * k + 4 * r, 4);
}

inline __m512i load64(const void* p) {
  return _mm512_loadu_si512(p);
}
inline __m512i low_nibbles(__m512i x) {
  return _mm512_and_si512(x, _mm512_set1_epi8(0x0f));
}
inline __m512i high_nibbles(__m512i x) {
  return _mm512_and_si512(_mm512_srli_epi16(x, 4), _mm512_set1_epi8(0x0f));
}
// Bits [shift, shift + 2) of each byte, moved to bits 4 and 5.
inline __m512i two_bits_at_4(__m512i x, int shift) {
  return _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(x, shift), _mm512_set1_epi8(3)), 4);
}
inline __m512i broadcast4(const int8_t* p) {
  int32_t x;
  std::memcpy(&x, p, 4);
  return _mm512_set1_epi32(x);
}
inline __m512 fp16x16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
// Sixteen bytes, one per row, as int32 lanes.
inline __m512i row_bytes_u8(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m512i row_bytes_s8(const int8_t* p) {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// ---- 32-element family: a block is 8 chunks ----

struct NoMinimums {};
struct Minimums {
  uint16_t m[kRows];
};
struct NoFifthBits {};
// Q5_0 and Q5_1: the fifth bits as one 64-bit mask per chunk, bit 4r + e for element e of the
// chunk in row r, so that one masked byte add puts them in place. Kept as bytes (read and
// written through memcpy), so a group needs no more alignment than its blocks.
struct FifthBits {
  uint8_t qh[kQK / 4 * 8];
};

// Q4_0 (offset 8), Q4_1 (values d·q + m), Q5_0 (offset 16) and Q5_1 (d·q + m), q a nibble and
// for Q5_0/Q5_1 a fifth bit. Unit k (0..3) holds word k of each row's nibbles: low nibbles
// elements 4k..4k+3 (chunk k), high nibbles 16 + 4k.. (chunk k + 4).
template <class B, int kOffsetValue, bool kAffineValues, bool kFifthBit>
struct Nibbles {
  using Block = B;
  using Act = BlockQ8_0;
  struct Group : std::conditional_t<kAffineValues, Minimums, NoMinimums>,
                 std::conditional_t<kFifthBit, FifthBits, NoFifthBits> {
    uint16_t d[kRows];
    uint8_t qs[kRows * kQK / 2];
  };
  static constexpr int kElems = kQK, kGroups = 1, kOffset = kOffsetValue;
  static constexpr bool kAffine = kAffineValues;

  static void repack_block(const Block* const (&rows)[kRows], Group& g) {
    const uint8_t* qs[kRows];
    for (int r = 0; r < kRows; ++r) {
      g.d[r] = rows[r]->d, qs[r] = rows[r]->qs;
      if constexpr (kAffine) g.m[r] = rows[r]->m;
    }
    rows_to_units(qs, kQK / 8, g.qs);
    if constexpr (kFifthBit) {
      uint64_t masks[kQK / 4] = {};
      for (int r = 0; r < kRows; ++r) {
        uint32_t bits;
        std::memcpy(&bits, rows[r]->qh, 4);  // bit j: element j
        for (int j = 0; j < kQK; ++j)
          masks[j / 4] |= static_cast<uint64_t>(bits >> j & 1) << (4 * r + j % 4);
      }
      std::memcpy(g.qh, masks, sizeof masks);
    }
  }
  static void unpack_block(const Group& g, Block* const (&rows)[kRows]) {
    uint8_t* qs[kRows];
    uint64_t masks[kQK / 4] = {};
    if constexpr (kFifthBit) std::memcpy(masks, g.qh, sizeof masks);
    for (int r = 0; r < kRows; ++r) {
      rows[r]->d = g.d[r], qs[r] = rows[r]->qs;
      if constexpr (kAffine) rows[r]->m = g.m[r];
      if constexpr (kFifthBit) {
        uint32_t bits = 0;
        for (int j = 0; j < kQK; ++j)
          bits |= static_cast<uint32_t>(masks[j / 4] >> (4 * r + j % 4) & 1) << j;
        std::memcpy(rows[r]->qh, &bits, 4);
      }
    }
    units_to_rows(g.qs, kQK / 8, qs);
  }
  static void values(const Group& g, int, __m512i (&v)[8]) {
    for (int k = 0; k < 4; ++k) {
      const __m512i x = load64(g.qs + 64 * k);
      v[k] = low_nibbles(x), v[k + 4] = high_nibbles(x);
    }
    if constexpr (kFifthBit)
      for (int c = 0; c < 8; ++c) {
        uint64_t mask;
        std::memcpy(&mask, g.qh + 8 * c, 8);
        v[c] = _mm512_mask_add_epi8(v[c], mask, v[c], _mm512_set1_epi8(16));
      }
  }
};
using Q4_0x16 = Nibbles<BlockQ4_0, 8, false, false>;
using Q4_1x16 = Nibbles<BlockQ4_1, 0, true, false>;
using Q5_0x16 = Nibbles<BlockQ5_0, 16, false, true>;
using Q5_1x16 = Nibbles<BlockQ5_1, 0, true, true>;

// Q8_0: signed bytes stored as q + 128 (the unsigned operand of vpdpbusd), chunk k at 64k.
struct Q8_0x16 {
  using Block = BlockQ8_0;
  using Act = BlockQ8_0;
  struct Group : NoMinimums {
    uint16_t d[kRows];
    uint8_t qs[kRows * kQK];
  };
  static constexpr int kElems = kQK, kGroups = 1, kOffset = 128;
  static constexpr bool kAffine = false;

  static void repack_block(const Block* const (&rows)[kRows], Group& g) {
    const uint8_t* qs[kRows];
    for (int r = 0; r < kRows; ++r)
      g.d[r] = rows[r]->d, qs[r] = reinterpret_cast<const uint8_t*>(rows[r]->qs);
    rows_to_units(qs, kQK / 4, g.qs);
    for (uint8_t& q : g.qs) q ^= 0x80;
  }
  static void unpack_block(const Group& g, Block* const (&rows)[kRows]) {
    uint8_t* qs[kRows];
    for (int r = 0; r < kRows; ++r)
      rows[r]->d = g.d[r], qs[r] = reinterpret_cast<uint8_t*>(rows[r]->qs);
    units_to_rows(g.qs, kQK / 4, qs);
    for (int r = 0; r < kRows; ++r)
      for (int8_t& q : rows[r]->qs) q = static_cast<int8_t>(q ^ 0x80);
  }
  static void values(const Group& g, int, __m512i (&v)[8]) {
    for (int k = 0; k < 8; ++k) v[k] = load64(g.qs + 64 * k);
  }
};

static_assert(sizeof(Q4_0x16::Group) == kRows * sizeof(BlockQ4_0));
static_assert(sizeof(Q4_1x16::Group) == kRows * sizeof(BlockQ4_1));
static_assert(sizeof(Q5_0x16::Group) == kRows * sizeof(BlockQ5_0));
static_assert(sizeof(Q5_1x16::Group) == kRows * sizeof(BlockQ5_1));
static_assert(sizeof(Q8_0x16::Group) == kRows * sizeof(BlockQ8_0));

// As gemm_avx512.cpp decodes a row block (the values come from decode(), offsets applied): Q4_1
// with minimums of 1 over both 16-element halves and m.
template <class F>
void decode_scales_32(const typename F::Group& g, int first, int count, DecodedRow* rows) {
  for (int i = 0; i < count; ++i) {
    const int r = first + i;
    rows[i].d = fp16_to_f32(g.d[r]);
    rows[i].m = 0;
    if constexpr (F::kAffine) rows[i].min[0] = rows[i].min[1] = 1, rows[i].m = fp16_to_f32(g.m[r]);
  }
}

// What the 32-element family needs of each (token, block) of activations besides the values,
// the same for every group, so a tile call computes it once for a span of blocks: Σa as the
// starting value −offset·Σa (Q4_0, Q5_0, Q8_0) and as float(Σa) (Q4_1, Q5_1), and the
// activations' scale as a float.
constexpr int64_t kSpan = 512;  // blocks
template <int T>
struct ActTerms {
  alignas(64) int32_t seed[T][kSpan];
  alignas(64) float sum[T][kSpan];
  alignas(64) float d[T][kSpan];
  template <class F>
  void fill(const BlockQ8_0* const (&y)[T], int64_t first, int64_t span) {
    for (int t = 0; t < T; ++t)
      for (int64_t i = 0; i < span; ++i) {
        const BlockQ8_0& b = y[t][first + i];
        int32_t s = 0;
        for (int e = 0; e < kQK; ++e) s += b.qs[e];
        seed[t][i] = -F::kOffset * s, sum[t][i] = static_cast<float>(s);
        d[t][i] = fp16_to_f32(b.d);
      }
  }
};

// Block i (the span's block j) of a group × T tokens: S = Σ u·a by vpdpbusd from the seed.
template <class F, int T>
void product_32(const typename F::Group& g, const BlockQ8_0* const (&y)[T], int64_t i, int64_t j,
                const ActTerms<T>& terms, __m512 (&acc)[T]) {
  __m512i v[8];
  F::values(g, 0, v);
  const __m512 d = fp16x16(g.d);
  __m512 m = _mm512_setzero_ps();
  if constexpr (F::kAffine) m = fp16x16(g.m);
  for (int t = 0; t < T; ++t) {
    __m512i sum = _mm512_set1_epi32(terms.seed[t][j]);
    for (int c = 0; c < 8; ++c)
      sum = _mm512_dpbusd_epi32(sum, v[c], broadcast4(y[t][i].qs + 4 * c));
    const __m512 da = _mm512_set1_ps(terms.d[t][j]);
    acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(d, da), acc[t]);
    if constexpr (F::kAffine)
      acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(terms.sum[t][j]), _mm512_mul_ps(m, da), acc[t]);
  }
}

// ---- K family: a super-block of 256 is 64 chunks, taken 8 at a time (32 elements) ----

// A K-family format: its blocks, groups and plain decoding (decoded_rows.h).
template <class B, class G, class R>
struct KFormat {
  using Block = B;
  using Act = BlockQ8_K;
  using Group = G;
  using Rows = R;
  static constexpr int kElems = kQKK, kGroups = 8;  // values() gives 32 elements at a time
};

// Q4_K. 192 bytes hold the rows' 256 six-bit numbers: number 16g + r is the scale of group g of
// row r; number 128 + 32p + 2r + e the minimum of group 2p + e of row r (pairs of groups side by
// side, as vpdpwssd takes them). Byte b < 128: the low four bits of number b (low nibble) and of
// number 128 + b (high nibble); byte 128 + j: the two high bits of numbers j, j + 64, j + 128 and
// j + 192. Values: unit u (0..31) holds word u of each row's qs, whose low nibbles are chunk
// 16·(u / 8) + u % 8 and high nibbles that + 8: 32-element group 2j is the low nibbles of units
// 8j..8j+7, group 2j + 1 their high nibbles.
struct Q4KGroup {
  uint16_t d[kRows], dmin[kRows];
  uint8_t scales[192];
  uint8_t qs[kRows * kQKK / 2];
};
static_assert(sizeof(Q4KGroup) == kRows * sizeof(BlockQ4_K));

struct Q4K : KFormat<BlockQ4_K, Q4KGroup, K4Rows> {
  static constexpr int kOffset = 0;
  static void repack_block(const Block* const (&rows)[kRows], Group& g) {
    uint8_t numbers[256];
    const uint8_t* qs[kRows];
    for (int r = 0; r < kRows; ++r) {
      DecodedRow row;
      Rows::decode(*rows[r], row);
      for (int k = 0; k < 8; ++k) {
        numbers[16 * k + r] = static_cast<uint8_t>(row.scale[k]);
        numbers[128 + 32 * (k / 2) + 2 * r + k % 2] = static_cast<uint8_t>(row.min[k]);
      }
      g.d[r] = rows[r]->d, g.dmin[r] = rows[r]->dmin, qs[r] = rows[r]->qs;
    }
    for (int b = 0; b < 128; ++b)
      g.scales[b] = static_cast<uint8_t>((numbers[b] & 15) | (numbers[128 + b] & 15) << 4);
    for (int j = 0; j < 64; ++j) {
      int x = 0;
      for (int k = 0; k < 4; ++k) x |= (numbers[j + 64 * k] >> 4) << (2 * k);
      g.scales[128 + j] = static_cast<uint8_t>(x);
    }
    rows_to_units(qs, kQKK / 8, g.qs);
  }

  static void unpack_block(const Group& g, Block* const (&rows)[kRows]) {
    uint8_t numbers[256];
    for (int n = 0; n < 256; ++n)
      numbers[n] = static_cast<uint8_t>(((g.scales[n % 128] >> (4 * (n / 128))) & 15) |
                                        ((g.scales[128 + n % 64] >> (2 * (n / 64))) & 3) << 4);
    uint8_t* qs[kRows];
    for (int r = 0; r < kRows; ++r) {
      Block& b = *rows[r];
      b.d = g.d[r], b.dmin = g.dmin[r], qs[r] = b.qs;
      uint8_t sc[8], mn[8];
      for (int k = 0; k < 8; ++k)
        sc[k] = numbers[16 * k + r], mn[k] = numbers[128 + 32 * (k / 2) + 2 * r + k % 2];
      for (int j = 0; j < 4; ++j) {  // the inverse of kquant_scale_min
        b.scales[j] = static_cast<uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
        b.scales[j + 4] = static_cast<uint8_t>(mn[j] | (mn[j + 4] >> 4) << 6);
        b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
      }
    }
    units_to_rows(g.qs, kQKK / 8, qs);
  }

  // The scales as bytes 16g + r (two registers) and the minimums as int16 pairs (four
  // registers, pair p in lanes r: groups 2p, 2p + 1 of row r).
  static void numbers(const Group& g, __m512i (&scales)[2], __m512i (&mins)[4]) {
    const __m512i l0 = load64(g.scales), l1 = load64(g.scales + 64), h = load64(g.scales + 128);
    scales[0] = _mm512_or_si512(low_nibbles(l0), two_bits_at_4(h, 0));
    scales[1] = _mm512_or_si512(low_nibbles(l1), two_bits_at_4(h, 2));
    const __m512i m0 = _mm512_or_si512(high_nibbles(l0), two_bits_at_4(h, 4));
    const __m512i m1 = _mm512_or_si512(high_nibbles(l1), two_bits_at_4(h, 6));
    mins[0] = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(m0));
    mins[1] = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(m0, 1));
    mins[2] = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(m1));
    mins[3] = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(m1, 1));
  }
  // The 8 chunks of 32-element group k, unsigned.
  static void values(const Group& g, int k, __m512i (&v)[8]) {
    for (int u = 0; u < 8; ++u) {
      const __m512i x = load64(g.qs + 64 * (8 * (k / 2) + u));
      v[u] = k % 2 ? high_nibbles(x) : low_nibbles(x);
    }
  }
  static void decode_scales(const Group& g, int first, int count, DecodedRow* rows) {
    __m512i sc[2], mn[4];
    numbers(g, sc, mn);
    uint8_t scales[128];
    int16_t mins[4][32];  // pair p: row r's minimums of groups 2p, 2p + 1 at 2r, 2r + 1
    for (int j = 0; j < 2; ++j) _mm512_storeu_si512(scales + 64 * j, sc[j]);
    for (int p = 0; p < 4; ++p) _mm512_storeu_si512(mins[p], mn[p]);
    for (int i = 0; i < count; ++i) {
      const int r = first + i;
      for (int k = 0; k < 8; ++k)
        rows[i].scale[k] = scales[16 * k + r], rows[i].min[k] = mins[k / 2][2 * r + k % 2];
      rows[i].d = fp16_to_f32(g.d[r]), rows[i].m = -fp16_to_f32(g.dmin[r]);
    }
  }

  template <int T>
  static void superblock(const Group& g, const BlockQ8_K* const (&y)[T], int64_t i,
                         __m512 (&acc)[T]) {
    __m512i sc[2], mins[4];
    numbers(g, sc, mins);
    alignas(64) uint8_t scales[128];
    _mm512_store_si512(scales, sc[0]);
    _mm512_store_si512(scales + 64, sc[1]);
    __m512i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm512_setzero_si512();
    for (int j = 0; j < 4; ++j) {  // groups 2j and 2j + 1: one load of their units for both
      __m512i lo[T], hi[T];
      for (int t = 0; t < T; ++t) lo[t] = hi[t] = _mm512_setzero_si512();
      for (int u = 0; u < 8; ++u) {
        const __m512i x = load64(g.qs + 64 * (8 * j + u));
        const __m512i low = low_nibbles(x), high = high_nibbles(x);
        for (int t = 0; t < T; ++t) {
          lo[t] = _mm512_dpbusd_epi32(lo[t], low, broadcast4(y[t][i].qs + 64 * j + 4 * u));
          hi[t] = _mm512_dpbusd_epi32(hi[t], high, broadcast4(y[t][i].qs + 64 * j + 32 + 4 * u));
        }
      }
      const __m512i scale_lo = row_bytes_u8(scales + 32 * j),
                    scale_hi = row_bytes_u8(scales + 32 * j + 16);
      for (int t = 0; t < T; ++t)
        s[t] = _mm512_add_epi32(s[t], _mm512_add_epi32(_mm512_mullo_epi32(lo[t], scale_lo),
                                                       _mm512_mullo_epi32(hi[t], scale_hi)));
    }
    const __m512 d = fp16x16(g.d), dmin = fp16x16(g.dmin);
    for (int t = 0; t < T; ++t) {
      alignas(16) int32_t pairs[4];  // group sums of 32, in pairs: (0, 1), (2, 3), ...
      _mm_store_si128(reinterpret_cast<__m128i*>(pairs), bsums_by_32(y[t][i]));
      __m512i m = _mm512_setzero_si512();
      for (int p = 0; p < 4; ++p) m = _mm512_dpwssd_epi32(m, mins[p], _mm512_set1_epi32(pairs[p]));
      const __m512 da = _mm512_set1_ps(y[t][i].d);
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), _mm512_mul_ps(d, da), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m), _mm512_mul_ps(dmin, da), acc[t]);
    }
  }
};

// Q6_K. Unit u (0..31) of ql holds word u of each row's ql, unit w (0..15) of qh word w of its
// qh. In the block, ql byte 64h + 32m + l holds the low four bits of elements 32·(4h + m) + l
// (low nibble) and 32·(4h + m + 2) + l (high nibble), and qh byte 32h + l the two high bits of
// elements 32·(4h + k) + l at bits 2k. So 32 elements K = 4h + k (k = 2·hi + m) are ql units
// 16h + 8m + 0..7 (nibble hi) with qh units 8h + 0..7 (bits 2k).
struct Q6KGroup {
  uint8_t ql[kRows * kQKK / 2];
  uint8_t qh[kRows * kQKK / 4];
  int8_t scales[kRows * 16];  // byte 16g + r: the scale of group g (of 16 elements) of row r
  uint16_t d[kRows];
};
static_assert(sizeof(Q6KGroup) == kRows * sizeof(BlockQ6_K));

struct Q6K : KFormat<BlockQ6_K, Q6KGroup, K6Rows> {
  static constexpr int kOffset = 32;
  static void repack_block(const Block* const (&rows)[kRows], Group& g) {
    const uint8_t *ql[kRows], *qh[kRows];
    for (int r = 0; r < kRows; ++r) {
      for (int k = 0; k < 16; ++k) g.scales[16 * k + r] = rows[r]->scales[k];
      g.d[r] = rows[r]->d, ql[r] = rows[r]->ql, qh[r] = rows[r]->qh;
    }
    rows_to_units(ql, kQKK / 8, g.ql);
    rows_to_units(qh, kQKK / 16, g.qh);
  }
  static void unpack_block(const Group& g, Block* const (&rows)[kRows]) {
    uint8_t *ql[kRows], *qh[kRows];
    for (int r = 0; r < kRows; ++r) {
      for (int k = 0; k < 16; ++k) rows[r]->scales[k] = g.scales[16 * k + r];
      rows[r]->d = g.d[r], ql[r] = rows[r]->ql, qh[r] = rows[r]->qh;
    }
    units_to_rows(g.ql, kQKK / 8, ql);
    units_to_rows(g.qh, kQKK / 16, qh);
  }
  // Elements 32K.., K = 4h + 2·hi + m: chunk u is ql unit 16h + 8m + u (nibble hi) with qh unit
  // 8h + u (bits 2(2·hi + m)) on top. K and K + 2 share both units.
  static __m512i ql_unit(const Group& g, int h, int m, int u) {
    return load64(g.ql + 64 * (16 * h + 8 * m + u));
  }
  static __m512i qh_unit(const Group& g, int h, int u) { return load64(g.qh + 64 * (8 * h + u)); }
  static __m512i chunk(__m512i ql, __m512i qh, int hi, int m) {
    return _mm512_or_si512(hi ? high_nibbles(ql) : low_nibbles(ql),
                           two_bits_at_4(qh, 2 * (2 * hi + m)));
  }
  // The 8 chunks of elements 32K..32K+31, unsigned (before the −32).
  static void values(const Group& g, int K, __m512i (&v)[8]) {
    const int h = K / 4, hi = K % 4 / 2, m = K % 2;
    for (int u = 0; u < 8; ++u) v[u] = chunk(ql_unit(g, h, m, u), qh_unit(g, h, u), hi, m);
  }
  static void decode_scales(const Group& g, int first, int count, DecodedRow* rows) {
    for (int i = 0; i < count; ++i) {
      const int r = first + i;
      for (int k = 0; k < 16; ++k) rows[i].scale[k] = g.scales[16 * k + r];
      rows[i].d = fp16_to_f32(g.d[r]), rows[i].m = 0;
    }
  }

  template <int T>
  static void superblock(const Group& g, const BlockQ8_K* const (&y)[T], int64_t i,
                         __m512 (&acc)[T]) {
    alignas(64) int32_t offset[T][16];  // −32·Σa per group of 16
    for (int t = 0; t < T; ++t)
      _mm512_store_si512(
          offset[t],
          _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setzero_si512(),
                                             _mm512_cvtepi16_epi32(load32(y[t][i].bsums))),
                            5));
    __m512i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm512_setzero_si512();
    // K = 4h + m and K + 2 from one load of their ql and qh units (values() loads them per K).
    for (int h = 0; h < 2; ++h)
      for (int m = 0; m < 2; ++m) {
        __m512i v[2][8];
        for (int u = 0; u < 8; ++u) {
          const __m512i ql = ql_unit(g, h, m, u), qh = qh_unit(g, h, u);
          v[0][u] = chunk(ql, qh, 0, m);
          v[1][u] = chunk(ql, qh, 1, m);
        }
        for (int hi = 0; hi < 2; ++hi)
          for (int e = 0; e < 2; ++e) {  // groups 2K and 2K + 1: chunks 0..3 and 4..7
            const int group = 2 * (4 * h + 2 * hi + m) + e;
            const __m512i scale = row_bytes_s8(g.scales + 16 * group);
            for (int t = 0; t < T; ++t) {
              __m512i sum = _mm512_set1_epi32(offset[t][group]);
              for (int c = 0; c < 4; ++c)
                sum = _mm512_dpbusd_epi32(sum, v[hi][4 * e + c],
                                          broadcast4(y[t][i].qs + 16 * group + 4 * c));
              s[t] = _mm512_add_epi32(s[t], _mm512_mullo_epi32(sum, scale));
            }
          }
      }
    const __m512 d = fp16x16(g.d);
    for (int t = 0; t < T; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]),
                               _mm512_mul_ps(d, _mm512_set1_ps(y[t][i].d)), acc[t]);
  }
};

// ---- the InterleavedKernels entries, per format ----

template <class F>
void repack(const void* rows, size_t row_bytes, int64_t cols, void* group) {
  using Block = typename F::Block;
  auto* out = static_cast<typename F::Group*>(group);
  for (int64_t i = 0; i < cols / F::kElems; ++i) {
    const Block* r[kRows];
    for (int q = 0; q < kRows; ++q) r[q] = &row_block<Block>(rows, row_bytes, q, i);
    F::repack_block(r, out[i]);
  }
}

template <class F>
void unpack(const void* group, int64_t cols, void* rows, size_t row_bytes) {
  using Block = typename F::Block;
  const auto* in = static_cast<const typename F::Group*>(group);
  for (int64_t i = 0; i < cols / F::kElems; ++i) {
    Block* r[kRows];
    for (int q = 0; q < kRows; ++q)
      r[q] = &reinterpret_cast<Block*>(static_cast<uint8_t*>(rows) + q * row_bytes)[i];
    F::unpack_block(in[i], r);
  }
}

// Values 8 chunks at a time, then each wanted row's word of a chunk to that row (offset taken
// off).
template <class F>
void decode(const void* group, int64_t block, int first, int count, DecodedRow* rows) {
  const auto& g = static_cast<const typename F::Group*>(group)[block];
  constexpr int kChunks = F::kElems / 4;
  alignas(64) uint8_t c[kChunks][64];
  for (int k = 0; k < F::kGroups; ++k) {
    __m512i v[8];
    F::values(g, k, v);
    for (int j = 0; j < 8; ++j)
      _mm512_store_si512(c[8 * k + j],
                         _mm512_sub_epi8(v[j], _mm512_set1_epi8(static_cast<char>(F::kOffset))));
  }
  for (int i = 0; i < count; ++i)
    for (int k = 0; k < kChunks; ++k) std::memcpy(rows[i].v + 4 * k, &c[k][4 * (first + i)], 4);
  if constexpr (F::kElems == kQK)
    decode_scales_32<F>(g, first, count, rows);
  else
    F::decode_scales(g, first, count, rows);
}

// `groups` groups (kInterleaveTileGroups at most) × T tokens, a span of blocks at a time: the
// 32-element family's ActTerms are computed once per span for all the groups, and each group's
// accumulators carry over from span to span, so blocks still add up in order.
template <class F, int T>
void tile_x16(int64_t n, int64_t groups, const void* group, const void* a, size_t act_bytes,
              float* out, size_t out_stride) {
  using Act = typename F::Act;
  using Group = typename F::Group;
  const Act* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const Act*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  const int64_t blocks = n / F::kElems;
  __m512 acc[kInterleaveTileGroups][T];
  for (int64_t g = 0; g < groups; ++g)
    for (int t = 0; t < T; ++t) acc[g][t] = _mm512_setzero_ps();
  struct NoTerms {};
  std::conditional_t<F::kElems == kQK, ActTerms<T>, NoTerms> terms;
  for (int64_t first = 0; first < blocks; first += kSpan) {
    const int64_t span = std::min(kSpan, blocks - first);
    if constexpr (F::kElems == kQK) terms.template fill<F>(y, first, span);
    for (int64_t g = 0; g < groups; ++g) {
      const Group* b = static_cast<const Group*>(group) + g * blocks;
      __m512 c[T];  // in registers through the span
      for (int t = 0; t < T; ++t) c[t] = acc[g][t];
      for (int64_t i = first; i < first + span; ++i) {
        prefetch_ahead(b[i]);
        if constexpr (F::kElems == kQK)
          product_32<F, T>(b[i], y, i, i - first, terms, c);
        else
          F::template superblock<T>(b[i], y, i, c);
      }
      for (int t = 0; t < T; ++t) acc[g][t] = c[t];
    }
  }
  for (int64_t g = 0; g < groups; ++g)
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(out + t * out_stride + kRows * g, acc[g][t]);
}

template <class F>
void tile(int64_t n, int64_t groups, const void* group, const void* a, size_t act_bytes, int tokens,
          float* out, size_t out_stride) {
  switch (tokens) {
    case 1:
      return tile_x16<F, 1>(n, groups, group, a, act_bytes, out, out_stride);
    case 2:
      return tile_x16<F, 2>(n, groups, group, a, act_bytes, out, out_stride);
    case 3:
      return tile_x16<F, 3>(n, groups, group, a, act_bytes, out, out_stride);
    default:
      return tile_x16<F, 4>(n, groups, group, a, act_bytes, out, out_stride);
  }
}

template <class F>
constexpr InterleavedKernels kKernels{repack<F>, unpack<F>, decode<F>, tile<F>};

}  // namespace

const InterleavedKernels* avx512vnni_interleaved(gguf::TensorType type) {
  switch (type) {
    case gguf::TensorType::Q4_0:
      return &kKernels<Q4_0x16>;
    case gguf::TensorType::Q4_1:
      return &kKernels<Q4_1x16>;
    case gguf::TensorType::Q5_0:
      return &kKernels<Q5_0x16>;
    case gguf::TensorType::Q5_1:
      return &kKernels<Q5_1x16>;
    case gguf::TensorType::Q8_0:
      return &kKernels<Q8_0x16>;
    case gguf::TensorType::Q4_K:
      return &kKernels<Q4K>;
    case gguf::TensorType::Q6_K:
      return &kKernels<Q6K>;
    default:
      return nullptr;
  }
}

}  // namespace ember::cpu
