// Interleaved weights for generation with AVX-512 VNNI (InterleavedKernels, kernels.h): Q4_0,
// Q4_1 and Q8_0.
//
// A group is 8 rows; per block i of 32 elements it holds the 8 rows' fp16 scales d[8] (Q4_1:
// and their minimums m[8], before them), then the values as four 64-byte "chunks" of 8 elements
// each (chunk c: elements 8c..8c+7). Q4_0 and Q4_1 keep them as nibbles, two chunks per 64 bytes
// (low nibbles chunk 0, high chunk 1; then chunks 2, 3); Q8_0 as bytes q + 128, one chunk per
// 64 bytes. In a chunk's 64 bytes, 32-bit lane l holds elements 8c + 4·(l / 8)
// + 0..3 of row l % 8. Against the activations broadcast the same way (lanes 0..7: a[8c..8c+3],
// lanes 8..15: a[8c+4..8c+7]), vpdpbusd advances all 8 rows at once, and after four chunks the
// two halves of the register add up to each row's Σ u·a (u the stored unsigned value). The
// offset (8 for Q4_0, 128 for Q8_0) comes off as offset·Σa (the same dot product with the
// offset in every byte), so each row gets S = Σ q·a of its signed values exactly, and then, as
// vec_dot, acc = fma(float(S), d·d_a, acc) block after block; Q4_1 takes S = Σ q·a and then
// acc = fma(float(Σa), m·d_a, acc).
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/decoded_rows.h"
#define EMBER_DOT_VNNI 1  // dot_x86.h's helpers (prefetching, block access) at this level
#include "kernels/cpu/dot_x86.h"
#include "kernels/cpu/kernels.h"

namespace ember::cpu {
namespace {

constexpr int kRows = kInterleaveRows;

// Rows 2m and 2m + 1 of a block as one register: 32 unsigned values each, in element order.
// Chunks: four registers, chunk c's lane 8h + r holding row r's elements 8c + 4h + 0..3.

// Q4_0 (offset 8) and Q4_1 (values d·q + m): 16 bytes of nibbles per row block.
struct NoMinimums {};
struct Minimums {
  uint16_t m[kRows];
};

template <class B, int kOffsetValue, bool kAffineValues>
struct Nibbles {
  using Block = B;
  struct Group : std::conditional_t<kAffineValues, Minimums, NoMinimums> {
    uint16_t d[kRows];
    uint8_t qs[kRows * kQK / 2];
  };
  static constexpr bool kAffine = kAffineValues;
  static constexpr int kOffset = kOffsetValue;
  static __m512i rows(const Block& a, const Block& b) {
    const __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.qs));
    const __m128i qb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    __m512i q = _mm512_castsi128_si512(qa);  // [lo a | hi a | lo b | hi b]
    q = _mm512_inserti32x4(q, _mm_srli_epi16(qa, 4), 1);
    q = _mm512_inserti32x4(q, qb, 2);
    q = _mm512_inserti32x4(q, _mm_srli_epi16(qb, 4), 3);
    return _mm512_and_si512(q, _mm512_set1_epi8(0x0f));
  }
  static void store_row(__m512i r, int j, Block& b) {
    // Elements 16..31 as high nibbles over 0..15.
    const __m512i q = _mm512_or_si512(
        r, _mm512_slli_epi16(_mm512_shuffle_i32x4(r, r, _MM_SHUFFLE(3, 3, 1, 1)), 4));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(b.qs),
                     j ? _mm512_extracti32x4_epi32(q, 2) : _mm512_castsi512_si128(q));
  }
  static void load_chunks(const Group& g, __m512i (&v)[4]) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i q0 = _mm512_loadu_si512(g.qs), q1 = _mm512_loadu_si512(g.qs + 64);
    v[0] = _mm512_and_si512(q0, low4), v[1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), low4);
    v[2] = _mm512_and_si512(q1, low4), v[3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), low4);
  }
  static void store_chunks(const __m512i (&v)[4], Group& g) {
    _mm512_storeu_si512(g.qs, _mm512_or_si512(v[0], _mm512_slli_epi16(v[1], 4)));
    _mm512_storeu_si512(g.qs + 64, _mm512_or_si512(v[2], _mm512_slli_epi16(v[3], 4)));
  }
};
using Q4_0x8 = Nibbles<BlockQ4_0, 8, false>;
using Q4_1x8 = Nibbles<BlockQ4_1, 0, true>;

// Q8_0: signed bytes, stored as q + 128 (the unsigned operand of vpdpbusd).
struct Q8_0x8 {
  using Block = BlockQ8_0;
  struct Group : NoMinimums {
    uint16_t d[kRows];
    uint8_t qs[kRows * kQK];
  };
  static constexpr bool kAffine = false;
  static constexpr int kOffset = 128;
  static __m512i flip(__m512i x) { return _mm512_xor_si512(x, _mm512_set1_epi8(-128)); }
  static __m512i rows(const Block& a, const Block& b) {
    return flip(_mm512_inserti64x4(_mm512_castsi256_si512(load32(a.qs)), load32(b.qs), 1));
  }
  static void store_row(__m512i r, int j, Block& b) {
    const __m512i q = flip(r);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(b.qs),
                        j ? _mm512_extracti64x4_epi64(q, 1) : _mm512_castsi512_si256(q));
  }
  static void load_chunks(const Group& g, __m512i (&v)[4]) {
    for (int c = 0; c < 4; ++c) v[c] = _mm512_loadu_si512(g.qs + 64 * c);
  }
  static void store_chunks(const __m512i (&v)[4], Group& g) {
    for (int c = 0; c < 4; ++c) _mm512_storeu_si512(g.qs + 64 * c, v[c]);
  }
};

static_assert(sizeof(Q4_0x8::Group) == kRows * sizeof(BlockQ4_0));
static_assert(sizeof(Q4_1x8::Group) == kRows * sizeof(BlockQ4_1));
static_assert(sizeof(Q8_0x8::Group) == kRows * sizeof(BlockQ8_0));

// Between rows and chunks, 64 dwords in four registers. Rows: register m holds rows 2m, 2m + 1,
// each 8 dwords, dword 2c + h of a row being its elements 8c + 4h + 0..3. Chunks: register c,
// lane 8h + r. Two rounds of two-register permutes each way, through "halves" P0..P3 (P0: rows
// 0..3 of chunks 0, 1; P1: rows 0..3 of chunks 2, 3; P2, P3: the same for rows 4..7), where
// dword 8·(c % 2) + 4h + (r % 4) is row r's dword 2c + h.
struct Shuffles {
  __m512i rows_to_half[2], half_to_chunk[2], chunk_to_half[2], half_to_rows[2];
  Shuffles() {
    alignas(64) int32_t idx[8][16];
    for (int p = 0; p < 16; ++p) {
      const int c = p / 8, h = (p / 4) % 2, r = p % 4;
      for (int base = 0; base < 2; ++base)  // rows 0..3 of chunks 2·base + 0, 1
        idx[base][p] = (r / 2) * 16 + (r % 2) * 8 + 2 * (2 * base + c) + h;
      const int lane_h = p / 8, lane_r = p % 8;  // chunk lane 8h + r
      for (int cl = 0; cl < 2; ++cl)
        idx[2 + cl][p] = (lane_r >= 4) * 16 + cl * 8 + lane_h * 4 + lane_r % 4;
      for (int extra = 0; extra < 2; ++extra)  // half p from chunks (2k, 2k + 1), rows 4·extra..
        idx[4 + extra][p] = c * 16 + h * 8 + 4 * extra + r;
      const int row = p / 8, d = p % 8, cc = d / 2, hh = d % 2;  // rows register: row, dword
      for (int pair = 0; pair < 2; ++pair)  // rows 2·pair, 2·pair + 1 of a half's four
        idx[6 + pair][p] = (cc >= 2) * 16 + (cc % 2) * 8 + hh * 4 + row + 2 * pair;
    }
    auto load = [&](int i) { return _mm512_load_si512(idx[i]); };
    rows_to_half[0] = load(0), rows_to_half[1] = load(1);
    half_to_chunk[0] = load(2), half_to_chunk[1] = load(3);
    chunk_to_half[0] = load(4), chunk_to_half[1] = load(5);
    half_to_rows[0] = load(6), half_to_rows[1] = load(7);
  }
};
const Shuffles& shuffles() {
  static const Shuffles s;
  return s;
}

template <class F>
void repack(const void* rows, size_t row_bytes, int64_t cols, void* group) {
  using Block = typename F::Block;
  const Shuffles& sh = shuffles();
  auto* out = static_cast<typename F::Group*>(group);
  for (int64_t i = 0; i < cols / kQK; ++i) {
    __m512i r[4];
    for (int m = 0; m < 4; ++m) {
      const Block& a = row_block<Block>(rows, row_bytes, 2 * m, i);
      const Block& b = row_block<Block>(rows, row_bytes, 2 * m + 1, i);
      r[m] = F::rows(a, b);
      out[i].d[2 * m] = a.d, out[i].d[2 * m + 1] = b.d;
      if constexpr (F::kAffine) out[i].m[2 * m] = a.m, out[i].m[2 * m + 1] = b.m;
    }
    __m512i half[4];
    for (int k = 0; k < 2; ++k) {
      half[k] = _mm512_permutex2var_epi32(r[0], sh.rows_to_half[k], r[1]);
      half[2 + k] = _mm512_permutex2var_epi32(r[2], sh.rows_to_half[k], r[3]);
    }
    __m512i v[4];
    for (int c = 0; c < 4; ++c)
      v[c] = _mm512_permutex2var_epi32(half[c / 2], sh.half_to_chunk[c % 2], half[2 + c / 2]);
    F::store_chunks(v, out[i]);
  }
}

// Block i of a group as rows (unsigned values): register m holds rows 2m and 2m + 1.
template <class F>
void group_rows(const typename F::Group& g, __m512i (&rows)[4]) {
  const Shuffles& sh = shuffles();
  __m512i v[4];
  F::load_chunks(g, v);
  __m512i half[4];  // P0, P1 (rows 0..3), P2, P3 (rows 4..7)
  for (int k = 0; k < 2; ++k)
    for (int e = 0; e < 2; ++e)
      half[2 * e + k] = _mm512_permutex2var_epi32(v[2 * k], sh.chunk_to_half[e], v[2 * k + 1]);
  for (int m = 0; m < 4; ++m)
    rows[m] =
        _mm512_permutex2var_epi32(half[2 * (m / 2)], sh.half_to_rows[m % 2], half[2 * (m / 2) + 1]);
}

template <class F>
void unpack(const void* group, int64_t cols, void* rows, size_t row_bytes) {
  using Block = typename F::Block;
  const auto* in = static_cast<const typename F::Group*>(group);
  for (int64_t i = 0; i < cols / kQK; ++i) {
    __m512i r[4];
    group_rows<F>(in[i], r);
    for (int m = 0; m < 4; ++m)
      for (int j = 0; j < 2; ++j) {
        auto& b =
            reinterpret_cast<Block*>(static_cast<uint8_t*>(rows) + (2 * m + j) * row_bytes)[i];
        b.d = in[i].d[2 * m + j];
        if constexpr (F::kAffine) b.m = in[i].m[2 * m + j];
        F::store_row(r[m], j, b);
      }
  }
}

// As gemm_avx512.cpp decodes a row block: signed values (q − 8 for Q4_0, q for Q8_0), or for
// Q4_1 q with minimums of 1 over both 16-element halves and m.
template <class F>
void decode(const void* group, int64_t block, DecodedRow* rows) {
  const auto& g = static_cast<const typename F::Group*>(group)[block];
  __m512i r[4];
  group_rows<F>(g, r);
  const __m512i offset = _mm512_set1_epi8(static_cast<char>(F::kOffset));
  for (int m = 0; m < 4; ++m) {
    const __m512i v = _mm512_sub_epi8(r[m], offset);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(rows[2 * m].v), _mm512_castsi512_si256(v));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(rows[2 * m + 1].v),
                        _mm512_extracti64x4_epi64(v, 1));
  }
  for (int row = 0; row < kRows; ++row) {
    rows[row].d = fp16_to_f32(g.d[row]);
    rows[row].m = 0;
    if constexpr (F::kAffine)
      rows[row].min[0] = rows[row].min[1] = 1, rows[row].m = fp16_to_f32(g.m[row]);
  }
}

template <class F, int T>
void tile_x8(int64_t n, const void* group, const void* a, size_t act_bytes, float* out,
             size_t out_stride) {
  const auto* g = static_cast<const typename F::Group*>(group);
  const BlockQ8_0* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  // Chunk c's activations: dword 2c of the block in lanes 0..7, dword 2c + 1 in lanes 8..15.
  const __m512i half = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m512i pick[4];
  for (int c = 0; c < 4; ++c) pick[c] = _mm512_add_epi32(half, _mm512_set1_epi32(2 * c));
  // offset·Σa to take off (Q4_0, Q8_0), or Σa for the minimums (Q4_1).
  const __m512i unit = _mm512_set1_epi8(static_cast<char>(F::kAffine ? 1 : F::kOffset));
  __m256 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK; ++i) {
    prefetch_ahead(g[i]);
    __m512i v[4];
    F::load_chunks(g[i], v);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g[i].d)));
    __m256 m = _mm256_setzero_ps();
    if constexpr (F::kAffine)
      m = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g[i].m)));
    for (int t = 0; t < T; ++t) {
      const __m512i act = _mm512_castsi256_si512(load32(y[t][i].qs));
      __m512i sum = _mm512_setzero_si512(), act_sum = _mm512_setzero_si512();
      for (int c = 0; c < 4; ++c) {
        const __m512i ac = _mm512_permutexvar_epi32(pick[c], act);
        sum = _mm512_dpbusd_epi32(sum, v[c], ac);
        act_sum = _mm512_dpbusd_epi32(act_sum, unit, ac);
      }
      auto fold = [](__m512i x) {  // lanes r and r + 8: one row's sum
        return _mm256_add_epi32(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64(x, 1));
      };
      const __m256 da = _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(y[t][i].d)));
      if constexpr (F::kAffine) {
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold(sum)), _mm256_mul_ps(d, da), acc[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold(act_sum)), _mm256_mul_ps(m, da), acc[t]);
      } else {
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold(_mm512_sub_epi32(sum, act_sum))),
                                 _mm256_mul_ps(d, da), acc[t]);
      }
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + t * out_stride, acc[t]);
}

template <class F>
void tile(int64_t n, const void* group, const void* a, size_t act_bytes, int tokens, float* out,
          size_t out_stride) {
  switch (tokens) {
    case 1:
      return tile_x8<F, 1>(n, group, a, act_bytes, out, out_stride);
    case 2:
      return tile_x8<F, 2>(n, group, a, act_bytes, out, out_stride);
    case 3:
      return tile_x8<F, 3>(n, group, a, act_bytes, out, out_stride);
    default:
      return tile_x8<F, 4>(n, group, a, act_bytes, out, out_stride);
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
    default:
      return nullptr;
  }
}

}  // namespace ember::cpu
