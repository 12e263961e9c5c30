// The attention block (attention.h) with AVX-512: a chunk's keys are transposed into a
// [head_dim][64] tile so that one query's 64 scores take at most head_dim × 4 FMAs, its values stay
// rows for the weighted sum, and exp is a vectorised polynomial. Needs head_dim % 16 == 0 (else the
// reference runs).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/fp16.h"

namespace ember::cpu {
namespace {

// e^x for x ≤ 0 (and −∞ → 0): x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial, scaled
// by 2^n. Within 2 ulp of std::exp.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // e^-104 is below the smallest float
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline float exp_scalar(float x) {
  return _mm512_cvtss_f32(exp_nonpositive(_mm512_set1_ps(x)));
}

// 16 values of a cached row from element `offset` (16-aligned within a Q8_0 block), as floats:
// the same float for every value as the reference's conversion.
inline __m512 load16(const void* base, gguf::TensorType type, int64_t offset) {
  if (type == gguf::TensorType::F16)
    return _mm512_cvtph_ps(_mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + offset)));
  if (type == gguf::TensorType::Q8_0) {
    const BlockQ8_0& b = static_cast<const BlockQ8_0*>(base)[offset / kQK];
    const __m512i q = _mm512_cvtepi8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + offset % kQK)));
    return _mm512_mul_ps(_mm512_set1_ps(fp16_to_f32(b.d)), _mm512_cvtepi32_ps(q));
  }
  return _mm512_loadu_ps(static_cast<const float*>(base) + offset);
}

// `d` values (a multiple of 16) of a cached row from element `offset`, as floats into `dst`.
inline void load_row(const void* base, gguf::TensorType type, int64_t offset, int d, float* dst) {
  for (int i = 0; i < d; i += 16) _mm512_storeu_ps(dst + i, load16(base, type, offset + i));
}

// Transposes 16 rows of 16 floats in registers: r[i] lane j becomes r[j] lane i. Within each
// 128-bit lane a 4 × 4 transpose (unpack by 32 then 64 bits), then the 128-bit lanes of four
// rows at a time regrouped twice (shuffle_f32x4): 64 shuffles for 256 values.
inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16], u[16];
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // u[4g + c], 128-bit lane L: column 4L + c of rows 4g..4g+3.
  for (int g = 0; g < 4; ++g) {
    const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]),
                  t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  constexpr int kEven = _MM_SHUFFLE(2, 0, 2, 0), kOdd = _MM_SHUFFLE(3, 1, 3, 1);
  for (int c = 0; c < 4; ++c) {
    const __m512 p = _mm512_shuffle_f32x4(u[c], u[4 + c], kEven),
                 q = _mm512_shuffle_f32x4(u[c], u[4 + c], kOdd),
                 p2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], kEven),
                 q2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], kOdd);
    r[c] = _mm512_shuffle_f32x4(p, p2, kEven);      // column c
    r[8 + c] = _mm512_shuffle_f32x4(p, p2, kOdd);   // column 8 + c
    r[4 + c] = _mm512_shuffle_f32x4(q, q2, kEven);  // column 4 + c
    r[12 + c] = _mm512_shuffle_f32x4(q, q2, kOdd);  // column 12 + c
  }
}

// For each of Q heads q: acc_q[0..d) = acc_q·rescale_q + Σ_j p_q[j]·v[j] over the chunk's value
// rows [begin, end) (those the query sees: others have weight 0, and leaving them out keeps its
// result free of rows other queries of a block see), in that order for every element; acc_q at acc
// + q·d, p_q at p + q·kAttentionChunk. NV = d / 16 accumulators per head stay in registers across
// the rows, so each p_q[j] is broadcast once per row; the heads side by side share each row's loads
// and give the FMA units independent chains.
template <int NV, int Q>
void add_weighted_values_n(float* acc, const float* rescale, const float* p, const float* v,
                           int begin, int end) {
  constexpr int d = 16 * NV;
  __m512 x[Q][NV];
  for (int h = 0; h < Q; ++h)
    for (int i = 0; i < NV; ++i)
      x[h][i] = _mm512_mul_ps(_mm512_loadu_ps(acc + h * d + 16 * i), _mm512_set1_ps(rescale[h]));
  for (int j = begin; j < end; ++j)
    for (int h = 0; h < Q; ++h) {
      const __m512 pj = _mm512_set1_ps(p[h * kAttentionChunk + j]);
      for (int i = 0; i < NV; ++i)
        x[h][i] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + j * d + 16 * i), x[h][i]);
    }
  for (int h = 0; h < Q; ++h)
    for (int i = 0; i < NV; ++i) _mm512_storeu_ps(acc + h * d + 16 * i, x[h][i]);
}

template <int Q>
void add_weighted_values(float* acc, const float* rescale, const float* p, const float* v, int d,
                         int begin, int end) {
  switch (d / 16) {  // the head sizes models use; others take the general loop
    case 4:
      return add_weighted_values_n<4, Q>(acc, rescale, p, v, begin, end);
    case 5:
      return add_weighted_values_n<5, Q>(acc, rescale, p, v, begin, end);
    case 6:
      return add_weighted_values_n<6, Q>(acc, rescale, p, v, begin, end);
    case 8:
      return add_weighted_values_n<8, Q>(acc, rescale, p, v, begin, end);
    case 16:  // 16 accumulators a head: one head at a time
      for (int h = 0; h < Q; ++h)
        add_weighted_values_n<16, 1>(acc + h * d, rescale + h, p + h * kAttentionChunk, v, begin,
                                     end);
      return;
    default:
      break;
  }
  for (int h = 0; h < Q; ++h)
    for (int i = 0; i < d; i += 16) {
      float* out = acc + h * d + i;
      __m512 x = _mm512_mul_ps(_mm512_loadu_ps(out), _mm512_set1_ps(rescale[h]));
      for (int j = begin; j < end; ++j)
        x = _mm512_fmadd_ps(_mm512_set1_ps(p[h * kAttentionChunk + j]),
                            _mm512_loadu_ps(v + j * d + i), x);
      _mm512_storeu_ps(out, x);
    }
}

// One chunk for Q query heads of one token side by side (rows r..r + Q − 1 of o, m and l; their
// queries at q[0..Q)): scores against the transposed keys kt (tiles up to n_g, lanes `visible`),
// the online softmax's update, the weighted values. A head's score sums are C/16 chains of
// dependent FMAs, too few to keep the FMA units busy alone; two heads share the key loads and
// double the chains. Every head's operations and their order are those of the head alone.
template <int Q>
void chunk_heads(const AttentionBlock& a, const float* const* q, int r, int n_g, int begin, int end,
                 const __mmask16* visible, const float* kt, const float* vc, float* o, float* m,
                 float* l, float* p) {
  constexpr int C = kAttentionChunk;
  const int d = a.head_dim;
  __m512 s[Q][C / 16];
  for (int h = 0; h < Q; ++h)
    for (int g = 0; g < C / 16; ++g) s[h][g] = _mm512_setzero_ps();
  for (int i = 0; i < d; ++i)
    for (int h = 0; h < Q; ++h) {
      const __m512 qi = _mm512_set1_ps(q[h][i]);
      for (int g = 0; g < C / 16; ++g)
        if (g < n_g) s[h][g] = _mm512_fmadd_ps(qi, _mm512_loadu_ps(kt + i * C + 16 * g), s[h][g]);
    }
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  float rescale[Q];
  for (int h = 0; h < Q; ++h) {
    __m512 chunk_max = neg_inf;
    for (int g = 0; g < n_g; ++g) {
      s[h][g] = _mm512_mask_mul_ps(neg_inf, visible[g], s[h][g], _mm512_set1_ps(a.scale));
      if (a.softcap > 0) {  // rare (gemma2): scalar tanh, hidden lanes stay −∞
        alignas(64) float lanes[16];
        _mm512_store_ps(lanes, s[h][g]);
        for (float& x : lanes) x = a.softcap * std::tanh(x / a.softcap);
        s[h][g] = _mm512_mask_mov_ps(neg_inf, visible[g], _mm512_load_ps(lanes));
      }
      chunk_max = _mm512_max_ps(chunk_max, s[h][g]);
    }
    const float m_new = std::max(m[r + h], _mm512_reduce_max_ps(chunk_max));
    rescale[h] = exp_scalar(m[r + h] - m_new);
    __m512 sum = _mm512_setzero_ps();
    for (int g = 0; g < n_g; ++g) {
      const __m512 w = _mm512_maskz_mov_ps(
          visible[g], exp_nonpositive(_mm512_sub_ps(s[h][g], _mm512_set1_ps(m_new))));
      _mm512_storeu_ps(p + h * C + 16 * g, w);
      sum = _mm512_add_ps(sum, w);
    }
    l[r + h] = l[r + h] * rescale[h] + _mm512_reduce_add_ps(sum);
    m[r + h] = m_new;
  }
  add_weighted_values<Q>(o + int64_t(r) * d, rescale, p, vc, d, begin, end);
}

// Asks for the key and value rows of positions [first, last] to be brought into L2. Added when a
// head's rows were a slice of each cached row (every KV head side by side), too scattered for
// the hardware prefetcher: read one miss at a time they held attention over a 4096-token context
// to 5 GB/s (1.1B shape, F16 cache), three chunks ahead 8 GB/s with the products running. The
// CPU backend's rows are now one contiguous run per head, but a short block still starts cold,
// and the products between the reads keep the stream from running ahead on its own.
void prefetch_rows(const AttentionBlock& a, int first, int last) {
  if (first > last) return;
  // Byte sizes once: bytes_for looks the type up out of line, and this runs for every row.
  const size_t head_bytes = gguf::bytes_for(a.kv_type, a.head_dim);
  const size_t stride = gguf::bytes_for(a.kv_type, a.row_stride);
  for (const void* base : {a.k, a.v}) {
    const char* row = static_cast<const char*>(base) + first * stride;
    for (int key = first; key <= last; ++key, row += stride)
      for (size_t line = 0; line < head_bytes; line += 64) _mm_prefetch(row + line, _MM_HINT_T1);
  }
}

// The first position a query at `pos` sees: the start of its window, or 0.
inline int first_seen(const AttentionBlock& a, int pos) {
  return a.window > 0 ? std::max(0, pos - a.window + 1) : 0;
}

// The positions a block reads: from the first any of its queries sees to the last query's.
struct SeenRange {
  int first = std::numeric_limits<int>::max(), last = -1;
};
SeenRange seen_range(const AttentionBlock& a) {
  SeenRange r;
  for (int b = 0; b < a.n_tokens; ++b) {
    r.first = std::min(r.first, first_seen(a, a.positions[b]));
    r.last = std::max(r.last, a.positions[b]);
  }
  return r;
}

}  // namespace

void attention_avx512(const AttentionBlock& a, AttentionScratch& scratch) {
  const int d = a.head_dim;
  if (d % 16 != 0 || (a.kv_type == gguf::TensorType::Q8_0 && d % kQK != 0))
    return attention_reference(a, scratch);
  constexpr int C = kAttentionChunk;
  if (a.n_tokens <= 0) return;
  const int rows = a.n_tokens * a.group;
  float* kt = scratch.reserve(int64_t(2) * C * d + int64_t(rows) * d + 2 * rows + 3 * C);
  float* vc = kt + C * d;  // [C][d]
  float* o = vc + C * d;   // [rows][d]
  float* m = o + int64_t(rows) * d;
  float* l = m + rows;
  float* p = l + rows;  // [2][C]
  std::fill(o, o + int64_t(rows) * d, 0.0f);
  std::fill(m, m + rows, -std::numeric_limits<float>::infinity());
  std::fill(l, l + rows, 0.0f);

  const auto [min_lo, max_pos] = seen_range(a);
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);

  prefetch_rows(a, min_lo / C * C, std::min(min_lo / C * C + 3 * C - 1, max_pos));
  // Once this block has no rows left to ask for, the next block's first three chunks follow, one
  // per chunk of this one: a generated token's block is a few chunks long, and each one began by
  // waiting for its rows.
  int next_from = 0, next_last = -1;
  if (a.next) {
    const SeenRange n = seen_range(*a.next);
    next_from = n.first / C * C;
    next_last = std::min(n.last, next_from + 3 * C - 1);
  }
  for (int c0 = min_lo / C * C; c0 <= max_pos; c0 += C) {
    // Convert the chunk's keys (transposed) and values, up to the tile that holds the block's
    // last position (no query reads past it); keys and rows the block cannot see are zeros.
    const int first = std::max(c0, min_lo), last = std::min(c0 + C - 1, max_pos);
    // Three chunks ahead, into L2 (prefetch_rows).
    if (c0 + 3 * C <= max_pos) {
      prefetch_rows(a, c0 + 3 * C, std::min(c0 + 4 * C - 1, max_pos));
    } else if (next_from <= next_last) {
      prefetch_rows(*a.next, next_from, std::min(next_from + C - 1, next_last));
      next_from += C;
    }
    // Keys in 16 × 16 tiles, transposed in registers.
    const int tiles = (last - c0) / 16 + 1;
    for (int j0 = 0; j0 < 16 * tiles; j0 += 16) {
      if (c0 + j0 + 15 < first) {  // a tile nobody sees
        for (int i = 0; i < d; ++i) _mm512_storeu_ps(kt + i * C + j0, _mm512_setzero_ps());
        continue;
      }
      for (int i0 = 0; i0 < d; i0 += 16) {
        __m512 tile[16];
        for (int jj = 0; jj < 16; ++jj) {
          const int key = c0 + j0 + jj;
          tile[jj] = key < first || key > last ? _mm512_setzero_ps()
                                               : load16(a.k, a.kv_type, key * a.row_stride + i0);
        }
        transpose16(tile);
        for (int ii = 0; ii < 16; ++ii) _mm512_storeu_ps(kt + (i0 + ii) * C + j0, tile[ii]);
      }
    }
    for (int j = 0; j < 16 * tiles; ++j) {
      const int key = c0 + j;
      if (key < first || key > last)
        std::fill(vc + j * d, vc + (j + 1) * d, 0.0f);
      else
        load_row(a.v, a.kv_type, key * a.row_stride, d, vc + j * d);
    }
    for (int b = 0; b < a.n_tokens; ++b) {
      const int pos = a.positions[b];
      const int lo = first_seen(a, pos);
      if (c0 + C - 1 < lo || c0 > pos) continue;  // nothing of this chunk is visible to it
      // Tiles of 16 keys up to its own position: the same for this query in any block, so its
      // result stays independent of the block it came in.
      const int n_g = std::min(C, pos - c0 + 1 + 15) / 16;
      const int begin = std::max(0, lo - c0), end = std::min(C, pos - c0 + 1);  // its value rows
      __mmask16 visible[C / 16];
      for (int g = 0; g < n_g; ++g) {
        const __m512i key = _mm512_add_epi32(lane, _mm512_set1_epi32(c0 + 16 * g));
        visible[g] = _mm512_cmp_epi32_mask(key, _mm512_set1_epi32(lo), _MM_CMPINT_NLT) &
                     _mm512_cmp_epi32_mask(key, _mm512_set1_epi32(pos), _MM_CMPINT_LE);
      }
      for (int h = 0; h < a.group; h += 2) {  // heads in pairs (chunk_heads)
        const float* q[2] = {a.q + b * a.q_stride + int64_t(h) * d,
                             a.q + b * a.q_stride + int64_t(h + 1) * d};
        if (h + 1 < a.group)
          chunk_heads<2>(a, q, b * a.group + h, n_g, begin, end, visible, kt, vc, o, m, l, p);
        else
          chunk_heads<1>(a, q, b * a.group + h, n_g, begin, end, visible, kt, vc, o, m, l, p);
      }
    }
  }
  for (int b = 0; b < a.n_tokens; ++b)
    for (int h = 0; h < a.group; ++h) {
      const int r = b * a.group + h;
      float* out = a.out + b * a.out_stride + int64_t(h) * d;
      const __m512 inv = _mm512_set1_ps(1.0f / l[r]);
      for (int i = 0; i < d; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_loadu_ps(o + int64_t(r) * d + i), inv));
    }
}

}  // namespace ember::cpu
