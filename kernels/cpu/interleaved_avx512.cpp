// Interleaved weights for generation with AVX-512 VNNI (InterleavedKernels, kernels.h): Q4_0,
// Q4_1 and Q8_0 (activations Q8_0), Q4_K and Q6_K (the types of a Q4_K_M file; activations Q8_K).
//
// A group is 8 rows. Per block (32 elements, or a K-family super-block of 256) it holds the 8
// rows' fp16 scales side by side, the K family's integer group scales side by side (Q4_K: with
// its minimums, still six bits each), and the values as "chunks" of 8 elements: chunk c's 64
// bytes hold elements 8c..8c+7 of row q at bytes 8q..8q+7. Against the activations' 8 bytes of
// chunk c broadcast to every 64-bit lane, one vpdpbusd advances all 8 rows by 8 elements, 32-bit
// lanes 2q and 2q + 1 holding row q's two halves: nothing is permuted, and the rows' scales load
// as one vector. Values are stored unsigned and as densely as in the blocks (Q4_0, Q4_1, Q4_K:
// nibbles; Q6_K: nibbles plus two bits; Q8_0: bytes q + 128). Each format's Group says the order.
//
// Every (row, block) gets exactly the integers of vec_dot and the same float operations, so
// results are bit for bit vec_dot's:
// - 32-element family (dot_avx512vnni.cpp): S = Σ u·a − offset·Σa (offset 8 for Q4_0, 128 for
//   Q8_0), acc = fma(float(S), d·d_a, acc); Q4_1: S = Σ u·a, then acc = fma(float(Σa), m·d_a, acc).
//   Σa per (token, block) is summed once per tile call, for all its groups.
// - K family (dot_x86.h's rounding): each group's Σ v·a is multiplied by the rows' integer scales
//   (vpmulld, both halves of a row carrying its scale) and summed,
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

// Lanes 2q and 2q + 1 summed into lane q.
inline __m256i fold_pairs(__m512i x) {
  return _mm512_cvtepi64_epi32(_mm512_add_epi32(x, _mm512_srli_epi64(x, 32)));
}
// Eight signed or unsigned bytes (one per row) as int32 in lanes 2q and 2q + 1.
inline __m512i row_scales(const int8_t* p) {
  return _mm512_shuffle_epi32(
      _mm512_cvtepi8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))), _MM_PERM_CCAA);
}
inline __m512i row_scales(const uint8_t* p) {
  return _mm512_shuffle_epi32(
      _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))), _MM_PERM_CCAA);
}
inline __m512i broadcast8(const int8_t* p) {
  int64_t x;
  std::memcpy(&x, p, 8);
  return _mm512_set1_epi64(x);
}
inline __m256 fp16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// ---- 32-element family: a block is one group of four chunks ----

struct NoMinimums {};
struct Minimums {
  uint16_t m[kRows];
};

// Q4_0 (offset 8) and Q4_1 (values d·q + m). The 64 bytes at 0 hold each row's first 8 bytes of
// nibbles (low: elements 0..7, chunk 0; high: 16..23, chunk 2), the 64 at 64 its last 8 (chunks
// 1 and 3): repacking only moves 8-byte pieces.
template <class B, int kOffsetValue, bool kAffineValues>
struct Nibbles {
  using Block = B;
  using Act = BlockQ8_0;
  struct Group : std::conditional_t<kAffineValues, Minimums, NoMinimums> {
    uint16_t d[kRows];
    uint8_t qs[kRows * kQK / 2];
  };
  static constexpr int kElems = kQK, kGroups = 1, kOffset = kOffsetValue;
  static constexpr bool kAffine = kAffineValues;

  static void repack_block(const Block* const (&rows)[kRows], Group& g) {
    for (int q = 0; q < kRows; ++q) {
      g.d[q] = rows[q]->d;
      if constexpr (kAffine) g.m[q] = rows[q]->m;
      std::memcpy(g.qs + 8 * q, rows[q]->qs, 8);
      std::memcpy(g.qs + 64 + 8 * q, rows[q]->qs + 8, 8);
    }
  }
  static void unpack_block(const Group& g, Block* const (&rows)[kRows]) {
    for (int q = 0; q < kRows; ++q) {
      rows[q]->d = g.d[q];
      if constexpr (kAffine) rows[q]->m = g.m[q];
      std::memcpy(rows[q]->qs, g.qs + 8 * q, 8);
      std::memcpy(rows[q]->qs + 8, g.qs + 64 + 8 * q, 8);
    }
  }
  static void values(const Group& g, int, __m512i (&v)[4]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i x0 = _mm512_loadu_si512(g.qs), x1 = _mm512_loadu_si512(g.qs + 64);
    v[0] = _mm512_and_si512(x0, low4), v[1] = _mm512_and_si512(x1, low4);
    v[2] = _mm512_and_si512(_mm512_srli_epi16(x0, 4), low4);
    v[3] = _mm512_and_si512(_mm512_srli_epi16(x1, 4), low4);
  }
};
using Q4_0x8 = Nibbles<BlockQ4_0, 8, false>;
using Q4_1x8 = Nibbles<BlockQ4_1, 0, true>;

// Q8_0: signed bytes stored as q + 128 (the unsigned operand of vpdpbusd), chunk c at 64c.
struct Q8_0x8 {
  using Block = BlockQ8_0;
  using Act = BlockQ8_0;
  struct Group : NoMinimums {
    uint16_t d[kRows];
    uint8_t qs[kRows * kQK];
  };
  static constexpr int kElems = kQK, kGroups = 1, kOffset = 128;
  static constexpr bool kAffine = false;

  static void repack_block(const Block* const (&rows)[kRows], Group& g) {
    for (int q = 0; q < kRows; ++q) {
      g.d[q] = rows[q]->d;
      for (int i = 0; i < kQK; ++i)
        g.qs[64 * (i / 8) + 8 * q + i % 8] = static_cast<uint8_t>(rows[q]->qs[i] ^ 0x80);
    }
  }
  static void unpack_block(const Group& g, Block* const (&rows)[kRows]) {
    for (int q = 0; q < kRows; ++q) {
      rows[q]->d = g.d[q];
      for (int i = 0; i < kQK; ++i)
        rows[q]->qs[i] = static_cast<int8_t>(g.qs[64 * (i / 8) + 8 * q + i % 8] ^ 0x80);
    }
  }
  static void values(const Group& g, int, __m512i (&v)[4]) {
    for (int c = 0; c < 4; ++c) v[c] = _mm512_loadu_si512(g.qs + 64 * c);
  }
};

static_assert(sizeof(Q4_0x8::Group) == kRows * sizeof(BlockQ4_0));
static_assert(sizeof(Q4_1x8::Group) == kRows * sizeof(BlockQ4_1));
static_assert(sizeof(Q8_0x8::Group) == kRows * sizeof(BlockQ8_0));

// As gemm_avx512.cpp decodes a row block (the values come from decode(), offsets applied): Q4_1
// with minimums of 1 over both 16-element halves and m.
template <class F>
void decode_scales_32(const typename F::Group& g, DecodedRow* rows) {
  for (int q = 0; q < kRows; ++q) {
    rows[q].d = fp16_to_f32(g.d[q]);
    rows[q].m = 0;
    if constexpr (F::kAffine) rows[q].min[0] = rows[q].min[1] = 1, rows[q].m = fp16_to_f32(g.m[q]);
  }
}

// What the 32-element family needs of each (token, block) of activations besides the values,
// the same for every group, so a tile call computes it once for a span of blocks: Σa as Q4_0's and
// Q8_0's starting value −offset·Σa (half in each of a row's two lanes) and as Q4_1's float(Σa),
// and the activations' scale as a float.
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
        seed[t][i] = -F::kOffset / 2 * s, sum[t][i] = static_cast<float>(s);
        d[t][i] = fp16_to_f32(b.d);
      }
  }
};

// Block i (the span's block j) of a group × T tokens: S = Σ u·a by vpdpbusd from the seed.
template <class F, int T>
void product_32(const typename F::Group& g, const BlockQ8_0* const (&y)[T], int64_t i, int64_t j,
                const ActTerms<T>& terms, __m256 (&acc)[T]) {
  __m512i v[4];
  F::values(g, 0, v);
  const __m256 d = fp16x8(g.d);
  __m256 m = _mm256_setzero_ps();
  if constexpr (F::kAffine) m = fp16x8(g.m);
  for (int t = 0; t < T; ++t) {
    __m512i sum = _mm512_set1_epi32(terms.seed[t][j]);
    for (int c = 0; c < 4; ++c)
      sum = _mm512_dpbusd_epi32(sum, v[c], broadcast8(y[t][i].qs + 8 * c));
    const __m256 da = _mm256_set1_ps(terms.d[t][j]);
    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_pairs(sum)), _mm256_mul_ps(d, da), acc[t]);
    if constexpr (F::kAffine)
      acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(terms.sum[t][j]), _mm256_mul_ps(m, da), acc[t]);
  }
}

// ---- K family: a super-block of 256, 32 chunks ----

constexpr int kChunks = kQKK / 8;  // chunks per super-block

// A super-block's values of 8 rows (unsigned, v[q][i]) as chunks: chunk c byte 8q + e = v[q][8c +
// e].
using RowValues = uint8_t[kRows][kQKK];
using Chunks = uint8_t[kChunks][64];
void rows_to_chunks(const RowValues& v, Chunks& c) {
  for (int k = 0; k < kChunks; ++k)
    for (int q = 0; q < kRows; ++q) std::memcpy(&c[k][8 * q], &v[q][8 * k], 8);
}
void chunks_to_rows(const Chunks& c, RowValues& v) {
  for (int k = 0; k < kChunks; ++k)
    for (int q = 0; q < kRows; ++q) std::memcpy(&v[q][8 * k], &c[k][8 * q], 8);
}

// Chunks packed as in a group: the low four bits of chunks 2k and 2k + 1 as the low and high
// nibbles of 64 bytes (`low`), and for Q6_K the next two bits of chunks 4k..4k+3 at bits 0, 2, 4
// and 6 of 64 bytes (`high`; nullptr for Q4_K).
void pack_chunks(const Chunks& c, uint8_t* low, uint8_t* high) {
  for (int k = 0; k < kChunks / 2; ++k)
    for (int b = 0; b < 64; ++b)
      low[64 * k + b] = static_cast<uint8_t>((c[2 * k][b] & 15) | (c[2 * k + 1][b] & 15) << 4);
  if (!high) return;
  for (int k = 0; k < kChunks / 4; ++k)
    for (int b = 0; b < 64; ++b) {
      int x = 0;
      for (int j = 0; j < 4; ++j) x |= (c[4 * k + j][b] >> 4 & 3) << (2 * j);
      high[64 * k + b] = static_cast<uint8_t>(x);
    }
}
void unpack_chunks(const uint8_t* low, const uint8_t* high, Chunks& c) {
  for (int k = 0; k < kChunks; ++k)
    for (int b = 0; b < 64; ++b) {
      const int low4 = low[64 * (k / 2) + b] >> (4 * (k % 2)) & 15;
      const int high2 = high ? high[64 * (k / 4) + b] >> (2 * (k % 4)) & 3 : 0;
      c[k][b] = static_cast<uint8_t>(low4 | high2 << 4);
    }
}

// A K-family format: its blocks, groups and plain decoding (decoded_rows.h).
template <class B, class G, class R>
struct KFormat {
  using Block = B;
  using Act = BlockQ8_K;
  using Group = G;
  using Rows = R;
  static constexpr int kElems = kQKK;
};

// Q4_K.
// 96 bytes hold the rows' 128 six-bit numbers: number n < 64 is the scale of group n / 8 of row
// n % 8; number 64 + 16p + 2q + e the minimum of group 2p + e of row q (pairs of groups side by
// side, as vpdpwssd takes them). Byte b < 64: low four bits of number b (low nibble) and of
// 64 + b (high nibble); byte 64 + j: the two high bits of numbers j, j + 32, j + 64, j + 96.
struct Q4KGroup {
  uint16_t d[kRows], dmin[kRows];
  uint8_t scales[96];
  uint8_t qs[kRows * kQKK / 2];  // chunks 2k, 2k + 1 as low and high nibbles of 64 bytes
};
static_assert(sizeof(Q4KGroup) == kRows * sizeof(BlockQ4_K));

struct Q4K : KFormat<BlockQ4_K, Q4KGroup, K4Rows> {
  static void repack_block(const Block* const (&rows)[kRows], Group& g) {
    alignas(64) RowValues v;
    uint8_t numbers[128];
    for (int q = 0; q < kRows; ++q) {
      DecodedRow r;
      Rows::decode(*rows[q], r);
      for (int i = 0; i < kQKK; ++i) v[q][i] = static_cast<uint8_t>(r.v[i]);
      for (int k = 0; k < 8; ++k) {
        numbers[8 * k + q] = static_cast<uint8_t>(r.scale[k]);
        numbers[64 + 16 * (k / 2) + 2 * q + k % 2] = static_cast<uint8_t>(r.min[k]);
      }
      g.d[q] = rows[q]->d, g.dmin[q] = rows[q]->dmin;
    }
    for (int b = 0; b < 64; ++b)
      g.scales[b] = static_cast<uint8_t>((numbers[b] & 15) | (numbers[64 + b] & 15) << 4);
    for (int j = 0; j < 32; ++j) {
      uint8_t x = 0;
      for (int k = 0; k < 4; ++k) x |= static_cast<uint8_t>((numbers[j + 32 * k] >> 4) << (2 * k));
      g.scales[64 + j] = x;
    }
    alignas(64) Chunks c;
    rows_to_chunks(v, c);
    pack_chunks(c, g.qs, nullptr);
  }

  static void unpack_block(const Group& g, Block* const (&rows)[kRows]) {
    uint8_t numbers[128];
    for (int n = 0; n < 128; ++n)
      numbers[n] = static_cast<uint8_t>(((g.scales[n % 64] >> (4 * (n / 64))) & 15) |
                                        ((g.scales[64 + n % 32] >> (2 * (n / 32))) & 3) << 4);
    alignas(64) Chunks c;
    unpack_chunks(g.qs, nullptr, c);
    alignas(64) RowValues v;
    chunks_to_rows(c, v);
    for (int q = 0; q < kRows; ++q) {
      Block& b = *rows[q];
      b.d = g.d[q], b.dmin = g.dmin[q];
      uint8_t sc[8], mn[8];
      for (int k = 0; k < 8; ++k)
        sc[k] = numbers[8 * k + q], mn[k] = numbers[64 + 16 * (k / 2) + 2 * q + k % 2];
      for (int j = 0; j < 4; ++j) {  // the inverse of kquant_scale_min
        b.scales[j] = static_cast<uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
        b.scales[j + 4] = static_cast<uint8_t>(mn[j] | (mn[j + 4] >> 4) << 6);
        b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 15) | (mn[j + 4] & 15) << 4);
      }
      for (int j = 0; j < 4; ++j)
        for (int l = 0; l < 32; ++l)
          b.qs[32 * j + l] = static_cast<uint8_t>(v[q][64 * j + l] | v[q][64 * j + 32 + l] << 4);
    }
  }

  static constexpr int kGroups = 8, kOffset = 0;
  // The 128 numbers of `scales` as bytes: the scales (numbers 0..63) and the minimums.
  static void numbers(const Group& g, __m512i& scales, __m512i& mins) {
    const __m512i packed = _mm512_loadu_si512(g.scales);
    const __m512i high =
        _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.scales + 64)));
    auto six_bits = [&](__m512i low, __m512i shifts) {
      return _mm512_or_si512(
          _mm512_and_si512(low, _mm512_set1_epi8(0x0f)),
          _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(high, shifts), _mm512_set1_epi8(3)),
                            4));
    };
    const __m512i half = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    scales = six_bits(packed, half);
    mins = six_bits(_mm512_srli_epi16(packed, 4), _mm512_add_epi16(half, _mm512_set1_epi16(4)));
  }
  // Chunks 4k..4k+3 (group k's 32 elements) as unsigned bytes.
  static void values(const Group& g, int k, __m512i (&v)[4]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i x0 = _mm512_loadu_si512(g.qs + 128 * k),
                  x1 = _mm512_loadu_si512(g.qs + 128 * k + 64);
    v[0] = _mm512_and_si512(x0, low4), v[1] = _mm512_and_si512(_mm512_srli_epi16(x0, 4), low4);
    v[2] = _mm512_and_si512(x1, low4), v[3] = _mm512_and_si512(_mm512_srli_epi16(x1, 4), low4);
  }
  // Scales, minimums and float scales of the rows, as decoded_rows.h has them.
  static void decode_scales(const Group& g, DecodedRow* rows) {
    __m512i sc, mn;
    numbers(g, sc, mn);
    alignas(64) uint8_t n[128];
    _mm512_store_si512(n, sc);
    _mm512_store_si512(n + 64, mn);
    for (int q = 0; q < kRows; ++q) {
      for (int k = 0; k < 8; ++k)
        rows[q].scale[k] = n[8 * k + q], rows[q].min[k] = n[64 + 16 * (k / 2) + 2 * q + k % 2];
      rows[q].d = fp16_to_f32(g.d[q]), rows[q].m = -fp16_to_f32(g.dmin[q]);
    }
  }

  template <int T>
  static void superblock(const Group& g, const BlockQ8_K* const (&y)[T], int64_t i,
                         __m256 (&acc)[T]) {
    __m512i sc, mins;
    numbers(g, sc, mins);
    alignas(64) uint8_t scales[64];
    _mm512_store_si512(scales, sc);
    const __m512i mins_lo = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(mins));
    const __m512i mins_hi = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(mins, 1));

    __m512i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm512_setzero_si512();
    for (int k = 0; k < 8; ++k) {
      __m512i v[4];
      values(g, k, v);
      const __m512i scale = row_scales(scales + 8 * k);
      for (int t = 0; t < T; ++t) {
        __m512i sum = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c)
          sum = _mm512_dpbusd_epi32(sum, v[c], broadcast8(y[t][i].qs + 32 * k + 8 * c));
        s[t] = _mm512_add_epi32(s[t], _mm512_mullo_epi32(sum, scale));
      }
    }
    const __m256 d = fp16x8(g.d), dmin = fp16x8(g.dmin);
    // Group sums in pairs: lanes 0..7 groups (0, 1), lanes 8..15 (2, 3); then (4, 5), (6, 7).
    const __m512i pairs_lo = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i pairs_hi = _mm512_add_epi32(pairs_lo, _mm512_set1_epi32(2));
    for (int t = 0; t < T; ++t) {
      const __m512i sums = _mm512_castsi128_si512(bsums_by_32(y[t][i]));
      __m512i m = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mins_lo,
                                      _mm512_permutexvar_epi32(pairs_lo, sums));
      m = _mm512_dpwssd_epi32(m, mins_hi, _mm512_permutexvar_epi32(pairs_hi, sums));
      const __m256i m8 =
          _mm256_add_epi32(_mm512_castsi512_si256(m), _mm512_extracti64x4_epi64(m, 1));
      const __m256 da = _mm256_set1_ps(y[t][i].d);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_pairs(s[t])), _mm256_mul_ps(d, da), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(m8), _mm256_mul_ps(dmin, da), acc[t]);
    }
  }
};

// Q6_K.
struct Q6KGroup {
  uint8_t ql[kRows * kQKK / 2];  // low four bits: chunks 2k, 2k + 1 as low and high nibbles
  uint8_t qh[kRows * kQKK / 4];  // high two bits: chunks 4k..4k+3 at bits 0, 2, 4, 6
  int8_t scales[kRows * 16];     // byte 8g + q: the scale of group g (of 16) of row q
  uint16_t d[kRows];
};
static_assert(sizeof(Q6KGroup) == kRows * sizeof(BlockQ6_K));

struct Q6K : KFormat<BlockQ6_K, Q6KGroup, K6Rows> {
  static void repack_block(const Block* const (&rows)[kRows], Group& g) {
    alignas(64) RowValues v;
    for (int q = 0; q < kRows; ++q) {
      DecodedRow r;
      Rows::decode(*rows[q], r);
      for (int i = 0; i < kQKK; ++i) v[q][i] = static_cast<uint8_t>(r.v[i] + 32);
      for (int k = 0; k < 16; ++k) g.scales[8 * k + q] = rows[q]->scales[k];
      g.d[q] = rows[q]->d;
    }
    alignas(64) Chunks c;
    rows_to_chunks(v, c);
    pack_chunks(c, g.ql, g.qh);
  }

  static void unpack_block(const Group& g, Block* const (&rows)[kRows]) {
    alignas(64) Chunks c;
    unpack_chunks(g.ql, g.qh, c);
    alignas(64) RowValues v;
    chunks_to_rows(c, v);
    for (int q = 0; q < kRows; ++q) {
      Block& b = *rows[q];
      b.d = g.d[q];
      for (int k = 0; k < 16; ++k) b.scales[k] = g.scales[8 * k + q];
      std::memset(b.ql, 0, sizeof b.ql);
      std::memset(b.qh, 0, sizeof b.qh);
      for (int k = 0; k < 8; ++k) {  // the inverse of K6Rows::decode
        const int h = k / 4, kk = k % 4;
        for (int l = 0; l < 32; ++l) {
          const int x = v[q][32 * k + l];
          b.ql[64 * h + 32 * (kk & 1) + l] |= static_cast<uint8_t>((x & 15) << (kk < 2 ? 0 : 4));
          b.qh[32 * h + l] |= static_cast<uint8_t>((x >> 4) << (2 * kk));
        }
      }
    }
  }

  static constexpr int kGroups = 16, kOffset = 32;
  // Chunks 2·group, 2·group + 1 (the group's 16 elements) as unsigned bytes.
  static void values(const Group& g, int group, __m512i (&v)[2]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), low2 = _mm512_set1_epi8(3);
    const __m512i x = _mm512_loadu_si512(g.ql + 64 * group);
    const __m512i h = _mm512_loadu_si512(g.qh + 64 * (group / 2));
    const int shift = 4 * (group % 2);
    v[0] =
        _mm512_or_si512(_mm512_and_si512(x, low4),
                        _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, shift), low2), 4));
    v[1] = _mm512_or_si512(
        _mm512_and_si512(_mm512_srli_epi16(x, 4), low4),
        _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(h, shift + 2), low2), 4));
  }
  static void decode_scales(const Group& g, DecodedRow* rows) {
    for (int q = 0; q < kRows; ++q) {
      for (int k = 0; k < 16; ++k) rows[q].scale[k] = g.scales[8 * k + q];
      rows[q].d = fp16_to_f32(g.d[q]), rows[q].m = 0;
    }
  }

  template <int T>
  static void superblock(const Group& g, const BlockQ8_K* const (&y)[T], int64_t i,
                         __m256 (&acc)[T]) {
    // −32·Σa per group, half in each of a row's two lanes.
    alignas(64) int32_t offset[T][16];
    for (int t = 0; t < T; ++t)
      _mm512_store_si512(
          offset[t],
          _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setzero_si512(),
                                             _mm512_cvtepi16_epi32(_mm256_loadu_si256(
                                                 reinterpret_cast<const __m256i*>(y[t][i].bsums)))),
                            4));
    __m512i s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm512_setzero_si512();
    for (int group = 0; group < 16; ++group) {
      __m512i v[2];
      values(g, group, v);
      const __m512i scale = row_scales(g.scales + 8 * group);
      for (int t = 0; t < T; ++t) {
        __m512i sum = _mm512_set1_epi32(offset[t][group]);
        sum = _mm512_dpbusd_epi32(sum, v[0], broadcast8(y[t][i].qs + 16 * group));
        sum = _mm512_dpbusd_epi32(sum, v[1], broadcast8(y[t][i].qs + 16 * group + 8));
        s[t] = _mm512_add_epi32(s[t], _mm512_mullo_epi32(sum, scale));
      }
    }
    const __m256 d = fp16x8(g.d);
    for (int t = 0; t < T; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_pairs(s[t])),
                               _mm256_mul_ps(d, _mm256_set1_ps(y[t][i].d)), acc[t]);
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

// Values chunk by chunk, then each row's 8 bytes of a chunk to that row (offset taken off).
template <class F>
void decode(const void* group, int64_t block, DecodedRow* rows) {
  const auto& g = static_cast<const typename F::Group*>(group)[block];
  constexpr int kBlockChunks = F::kElems / 8, kPerGroup = kBlockChunks / F::kGroups;
  alignas(64) uint8_t c[kBlockChunks][64];
  for (int k = 0; k < F::kGroups; ++k) {
    __m512i v[kPerGroup];
    F::values(g, k, v);
    for (int j = 0; j < kPerGroup; ++j)
      _mm512_store_si512(c[kPerGroup * k + j],
                         _mm512_sub_epi8(v[j], _mm512_set1_epi8(static_cast<char>(F::kOffset))));
  }
  for (int q = 0; q < kRows; ++q)
    for (int k = 0; k < kBlockChunks; ++k) std::memcpy(rows[q].v + 8 * k, &c[k][8 * q], 8);
  if constexpr (F::kElems == kQK)
    decode_scales_32<F>(g, rows);
  else
    F::decode_scales(g, rows);
}

// `groups` groups (kInterleaveTileGroups at most) × T tokens, a span of blocks at a time: the
// 32-element family's ActTerms are computed once per span for all the groups, and each group's
// accumulators carry over from span to span, so blocks still add up in order.
template <class F, int T>
void tile_x8(int64_t n, int64_t groups, const void* group, const void* a, size_t act_bytes,
             float* out, size_t out_stride) {
  using Act = typename F::Act;
  using Group = typename F::Group;
  const Act* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const Act*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  const int64_t blocks = n / F::kElems;
  __m256 acc[kInterleaveTileGroups][T];
  for (int64_t g = 0; g < groups; ++g)
    for (int t = 0; t < T; ++t) acc[g][t] = _mm256_setzero_ps();
  struct NoTerms {};
  std::conditional_t<F::kElems == kQK, ActTerms<T>, NoTerms> terms;
  for (int64_t first = 0; first < blocks; first += kSpan) {
    const int64_t span = std::min(kSpan, blocks - first);
    if constexpr (F::kElems == kQK) terms.template fill<F>(y, first, span);
    for (int64_t g = 0; g < groups; ++g) {
      const Group* b = static_cast<const Group*>(group) + g * blocks;
      __m256 c[T];  // in registers through the span
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
    for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + t * out_stride + kRows * g, acc[g][t]);
}

template <class F>
void tile(int64_t n, int64_t groups, const void* group, const void* a, size_t act_bytes, int tokens,
          float* out, size_t out_stride) {
  switch (tokens) {
    case 1:
      return tile_x8<F, 1>(n, groups, group, a, act_bytes, out, out_stride);
    case 2:
      return tile_x8<F, 2>(n, groups, group, a, act_bytes, out, out_stride);
    case 3:
      return tile_x8<F, 3>(n, groups, group, a, act_bytes, out, out_stride);
    default:
      return tile_x8<F, 4>(n, groups, group, a, act_bytes, out, out_stride);
  }
}

template <class F>
constexpr InterleavedKernels kKernels{repack<F>, unpack<F>, decode<F>, tile<F>};

}  // namespace

const InterleavedKernels* avx512vnni_interleaved(gguf::TensorType type) {
  switch (type) {
    case gguf::TensorType::Q4_0:
      return &kKernels<Q4_0x8>;
    case gguf::TensorType::Q4_1:
      return &kKernels<Q4_1x8>;
    case gguf::TensorType::Q8_0:
      return &kKernels<Q8_0x8>;
    case gguf::TensorType::Q4_K:
      return &kKernels<Q4K>;
    case gguf::TensorType::Q6_K:
      return &kKernels<Q6K>;
    default:
      return nullptr;
  }
}

}  // namespace ember::cpu
