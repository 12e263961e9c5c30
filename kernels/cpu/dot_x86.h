// x86 dot products of one weight row with one row of quantised activations, written once and
// compiled twice: dot_avx2.cpp (AVX2+FMA+F16C) and dot_avx512vnni.cpp (the same code with the
// int8 dot product done by VNNI's vpdpbusd). Everything here has internal linkage so the two
// compilations never mix. Integer sums are exact; scales are applied per block in float.
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

// Σ u·s with lanes 0..15 scaled by `low` and lanes 16..31 by `high` → 8 × int32.
inline __m256i dot_u8s8_scaled(__m256i u, __m256i s, int low, int high) {
  if constexpr (kVnni) {
    __m256i scale = _mm256_set_m128i(_mm_set1_epi32(high), _mm_set1_epi32(low));
    return _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s), scale);
  } else {
    __m256i scale = _mm256_set_m128i(_mm_set1_epi16(static_cast<short>(high)),
                                     _mm_set1_epi16(static_cast<short>(low)));
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale);
  }
}

// ---- 32-element family ----

float dot_q4_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK; ++i) {
    __m256i q = _mm256_sub_epi8(unpack_nibbles(x[i].qs), _mm256_set1_epi8(8));
    __m256i p = dot_s8(q, load32(y[i].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
  }
  return hsum(acc);
}

inline __m256i q5_values(const uint8_t* qs, const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  __m256i high = _mm256_and_si256(bits_to_bytes(bits), _mm256_set1_epi8(0x10));
  return _mm256_or_si256(unpack_nibbles(qs), high);
}

float dot_q5_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK; ++i) {
    __m256i q = _mm256_sub_epi8(q5_values(x[i].qs, x[i].qh), _mm256_set1_epi8(16));
    __m256i p = dot_s8(q, load32(y[i].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
  }
  return hsum(acc);
}

// Q4_1/Q5_1 against Q8_0 activations: Σ (d·q + m)·a = d·Σ q·a + m·Σ a, with Σ a summed here
// exactly rather than taken from Q8_1's fp16 sum.
template <class Block, __m256i (*kValues)(const Block&)>
float dot_affine(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const __m256i ones = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK; ++i) {
    __m256i act = load32(y[i].qs);
    __m256i p = dot_u8s8(kValues(x[i]), act);
    __m256i sum_a = dot_u8s8(ones, act);
    float da = h2f(y[i].d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * da), _mm256_cvtepi32_ps(p), acc);
    acc_min = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].m) * da), _mm256_cvtepi32_ps(sum_a), acc_min);
  }
  return hsum(_mm256_add_ps(acc, acc_min));
}

inline __m256i q4_1_values(const BlockQ4_1& b) {
  return unpack_nibbles(b.qs);
}
inline __m256i q5_1_values(const BlockQ5_1& b) {
  return q5_values(b.qs, b.qh);
}

float dot_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t blocks = n / kQK, i = 0;
  for (; i + 1 < blocks; i += 2) {  // two independent chains hide the FMA latency
    __m256i p0 = dot_s8(load32(x[i].qs), load32(y[i].qs));
    __m256i p1 = dot_s8(load32(x[i + 1].qs), load32(y[i + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i + 1].d) * h2f(y[i + 1].d)),
                           _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; i < blocks; ++i) {
    __m256i p = dot_s8(load32(x[i].qs), load32(y[i].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

inline __m256i iq4_table() {
  __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4Values));
  return _mm256_set_m128i(t, t);
}

float dot_iq4_nl(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ4_NL*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const __m256i table = iq4_table();
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK; ++i) {
    __m256i q = _mm256_shuffle_epi8(table, unpack_nibbles(x[i].qs));
    __m256i p = dot_s8(q, load32(y[i].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x[i].d) * h2f(y[i].d)), _mm256_cvtepi32_ps(p), acc);
  }
  return hsum(acc);
}

// ---- K family (activations in Q8_K) ----

float dot_q2_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const uint8_t* sc = x[i].scales;
    int summ = 0;
    for (int g = 0; g < 16; ++g) summ += (sc[g] >> 4) * y[i].bsums[g];
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      __m256i bits = load32(x[i].qs + 32 * h);
      for (int s = 0; s < 4; ++s) {
        __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * s), _mm256_set1_epi8(3));
        int g = 8 * h + 2 * s;
        sumi = _mm256_add_epi32(sumi, dot_u8s8_scaled(q, load32(y[i].qs + 128 * h + 32 * s),
                                                      sc[g] & 0x0f, sc[g + 1] & 0x0f));
      }
    }
    float d = h2f(x[i].d) * y[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    mins += h2f(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return hsum(acc) - mins;
}

float dot_q3_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    int8_t sc[16];
    q3k_scales(x[i].scales, sc);
    int offset = 0;  // values are q − 4 with q in 0..7: Σ (q−4)·a = Σ q·a − 4·Σ a
    for (int g = 0; g < 16; ++g) offset += sc[g] * y[i].bsums[g];
    __m256i hmask = load32(x[i].hmask);
    __m256i sumi = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      __m256i bits = load32(x[i].qs + 32 * h);
      for (int s = 0; s < 4; ++s) {
        int plane = 4 * h + s;
        __m256i low = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * s), _mm256_set1_epi8(3));
        __m256i high = _mm256_and_si256(_mm256_srli_epi16(hmask, plane), _mm256_set1_epi8(1));
        __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(high, 2));
        int g = 8 * h + 2 * s;
        sumi = _mm256_add_epi32(sumi,
                                dot_u8s8_scaled(q, load32(y[i].qs + 32 * plane), sc[g], sc[g + 1]));
      }
    }
    float d = h2f(x[i].d) * y[i].d;
    __m256i total = _mm256_sub_epi32(sumi, _mm256_setr_epi32(4 * offset, 0, 0, 0, 0, 0, 0, 0));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(total), acc);
  }
  return hsum(acc);
}

// Q4_K and Q5_K share everything but the fifth bit.
template <class Block, bool kFifthBit>
float dot_q45_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    uint8_t sc[8], mn[8];
    int summ = 0;
    for (int g = 0; g < 8; ++g) {
      kquant_scale_min(x[i].scales, g, &sc[g], &mn[g]);
      summ += mn[g] * (y[i].bsums[2 * g] + y[i].bsums[2 * g + 1]);
    }
    __m256i high_bits = _mm256_setzero_si256();
    if constexpr (kFifthBit) high_bits = load32(x[i].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {
      __m256i bytes = load32(x[i].qs + 32 * j);
      __m256i lo = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0f));
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), _mm256_set1_epi8(0x0f));
      if constexpr (kFifthBit) {
        const __m256i one = _mm256_set1_epi8(1);
        lo = _mm256_or_si256(
            lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high_bits, 2 * j), one), 4));
        hi = _mm256_or_si256(
            hi,
            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(high_bits, 2 * j + 1), one), 4));
      }
      sumi = _mm256_add_epi32(sumi,
                              dot_u8s8_scaled(lo, load32(y[i].qs + 64 * j), sc[2 * j], sc[2 * j]));
      sumi = _mm256_add_epi32(
          sumi, dot_u8s8_scaled(hi, load32(y[i].qs + 64 * j + 32), sc[2 * j + 1], sc[2 * j + 1]));
    }
    float d = h2f(x[i].d) * y[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    mins += h2f(x[i].dmin) * y[i].d * static_cast<float>(summ);
  }
  return hsum(acc) - mins;
}

float dot_q6_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const int8_t* sc = x[i].scales;
    int offset = 0;  // values are q − 32 with q in 0..63
    for (int g = 0; g < 16; ++g) offset += sc[g] * y[i].bsums[g];
    __m256i sumi = _mm256_setzero_si256();
    const __m256i low4 = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      __m256i ql_a = load32(x[i].ql + 64 * h), ql_b = load32(x[i].ql + 64 * h + 32);
      __m256i qh = load32(x[i].qh + 32 * h);
      for (int k = 0; k < 4; ++k) {
        __m256i ql = (k & 1) ? ql_b : ql_a;
        __m256i low = _mm256_and_si256(k < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
        __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * k), two);
        __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
        int g = 8 * h + 2 * k;
        sumi = _mm256_add_epi32(
            sumi, dot_u8s8_scaled(q, load32(y[i].qs + 128 * h + 32 * k), sc[g], sc[g + 1]));
      }
    }
    float d = h2f(x[i].d) * y[i].d;
    __m256i total = _mm256_sub_epi32(sumi, _mm256_setr_epi32(32 * offset, 0, 0, 0, 0, 0, 0, 0));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(total), acc);
  }
  return hsum(acc);
}

float dot_iq4_xs(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ4_XS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  const __m256i table = iq4_table();
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    __m256i sumi = _mm256_setzero_si256();
    for (int g = 0; g < 8; ++g) {
      int low = (x[i].scales_l[g / 2] >> (4 * (g % 2))) & 0x0f;
      int high = (x[i].scales_h >> (2 * g)) & 3;
      int scale = (low | (high << 4)) - 32;
      __m256i q = _mm256_shuffle_epi8(table, unpack_nibbles(x[i].qs + 16 * g));
      __m256i p = dot_s8(q, load32(y[i].qs + 32 * g));
      sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(p, _mm256_set1_epi32(scale)));
    }
    float d = h2f(x[i].d) * y[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc);
}

// ---- float weights (activations stay float32) ----

// Σ x_i·y_i for float-like weights; load8(i) widens 8 weights, load1(i) one (for the tail).
template <class Load8, class Load1>
float dot_float_rows(int64_t n, const float* y, Load8 load8, Load1 load1) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(load8(i), _mm256_loadu_ps(y + i), acc0);
    acc1 = _mm256_fmadd_ps(load8(i + 8), _mm256_loadu_ps(y + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(load8(i), _mm256_loadu_ps(y + i), acc0);
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += load1(i) * y[i];
  return sum;
}

float dot_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  return dot_float_rows(
      n, static_cast<const float*>(a), [x](int64_t i) { return _mm256_loadu_ps(x + i); },
      [x](int64_t i) { return x[i]; });
}

float dot_f16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  return dot_float_rows(
      n, static_cast<const float*>(a),
      [x](int64_t i) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
      },
      [x](int64_t i) { return h2f(x[i]); });
}

float dot_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  return dot_float_rows(
      n, static_cast<const float*>(a),
      [x](int64_t i) {
        __m256i wide =
            _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
      },
      [x](int64_t i) { return bf16_to_f32(x[i]); });
}

VecDotFn x86_vec_dot(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::F32:
      return dot_f32;
    case TensorType::F16:
      return dot_f16;
    case TensorType::BF16:
      return dot_bf16;
    case TensorType::Q4_0:
      return dot_q4_0;
    case TensorType::Q4_1:
      return dot_affine<BlockQ4_1, q4_1_values>;
    case TensorType::Q5_0:
      return dot_q5_0;
    case TensorType::Q5_1:
      return dot_affine<BlockQ5_1, q5_1_values>;
    case TensorType::Q8_0:
      return dot_q8_0;
    case TensorType::IQ4_NL:
      return dot_iq4_nl;
    case TensorType::Q2_K:
      return dot_q2_k;
    case TensorType::Q3_K:
      return dot_q3_k;
    case TensorType::Q4_K:
      return dot_q45_k<BlockQ4_K, false>;
    case TensorType::Q5_K:
      return dot_q45_k<BlockQ5_K, true>;
    case TensorType::Q6_K:
      return dot_q6_k;
    case TensorType::IQ4_XS:
      return dot_iq4_xs;
    default:
      return nullptr;
  }
}

}  // namespace
}  // namespace ember::cpu
