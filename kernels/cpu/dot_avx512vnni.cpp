// The x86 dot products with AVX-512 VNNI: the shared 256-bit kernels of dot_x86.h (with vpdpbusd
// for the int8 products), and 512-bit tiles for the 32-element family, which take two blocks
// per instruction. Those formats spend the most instructions per byte (a scale per 32 values),
// so they gain the most from the wider registers, in generation as in prompt processing.
#define EMBER_DOT_VNNI 1
#include "kernels/cpu/dot_x86.h"

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
struct ZQ8_0 : Q8_0Format {
  static __m512i values2(const Block& a, const Block& b) {
    return join(load32(a.qs), load32(b.qs));
  }
};
struct ZIQ4_NL : IQ4_NLFormat {
  static __m512i values2(const Block& a, const Block& b) {
    const __m512i table =
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4Values)));
    return _mm512_shuffle_epi8(table, nibbles_pair(a.qs, b.qs));
  }
};

inline __m512i dot512_u8s8(__m512i u, __m512i s) {
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
}

// The same computation as tile_32 (dot_x86.h), two blocks per step; an odd last block goes
// through tile_32 itself.
template <class F, int R, int T>
void tile_32_zmm(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                 TileOut o) {
  using Block = typename F::Block;
  const BlockQ8_0* y[T];
  for (int t = 0; t < T; ++t)
    y[t] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * act_bytes);
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  const int64_t blocks = n / kQK, pairs = blocks / 2;
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t i = 2 * p;
    __m512i act[T], offset_sum[T];
    __m512 da[T], act_sum[T];
    for (int t = 0; t < T; ++t) {
      act[t] = join(load32(y[t][i].qs), load32(y[t][i + 1].qs));
      da[t] = scale_pair(y[t][i].d, y[t][i + 1].d);
      // −offset·Σa seeds each row's accumulator, so vpdpbusd alone yields Σ (v − offset)·a.
      if constexpr (F::kKind == Kind::kUnsignedOffset)
        offset_sum[t] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                         dot512_u8s8(_mm512_set1_epi8(F::kOffset), act[t]));
      if constexpr (F::kKind == Kind::kAffine)
        act_sum[t] =
            _mm512_mul_ps(_mm512_cvtepi32_ps(dot512_u8s8(_mm512_set1_epi8(1), act[t])), da[t]);
    }
    for (int r = 0; r < R; ++r) {
      const Block& b0 = row_block<Block>(w, row_bytes, r, i);
      const Block& b1 = row_block<Block>(w, row_bytes, r, i + 1);
      prefetch_ahead(b0);
      prefetch_ahead(b1);
      const __m512i v = F::values2(b0, b1);
      const __m512i v_abs = F::kKind == Kind::kSigned ? _mm512_abs_epi8(v) : v;
      const __m512 dw = scale_pair(b0.d, b1.d);
      __m512 dm;
      if constexpr (F::kKind == Kind::kAffine) dm = scale_pair(b0.m, b1.m);
      for (int t = 0; t < T; ++t) {
        __m512i dot;
        if constexpr (F::kKind == Kind::kSigned) {
          // |v| · (a with v's sign): negate a where v < 0.
          __mmask64 negative = _mm512_movepi8_mask(v);
          dot = dot512_u8s8(v_abs,
                            _mm512_mask_sub_epi8(act[t], negative, _mm512_setzero_si512(), act[t]));
        } else if constexpr (F::kKind == Kind::kUnsignedOffset) {
          dot = _mm512_dpbusd_epi32(offset_sum[t], v, act[t]);
        } else {
          dot = dot512_u8s8(v, act[t]);
        }
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, da[t]), acc[r][t]);
        if constexpr (F::kKind == Kind::kAffine)
          acc[r][t] = _mm512_fmadd_ps(act_sum[t], dm, acc[r][t]);
      }
    }
  }
  float tail[R * T] = {};
  if (blocks % 2) {
    const int64_t last = blocks - 1;
    tile_32<F, R, T>(kQK, static_cast<const uint8_t*>(w) + last * sizeof(Block), row_bytes,
                     static_cast<const uint8_t*>(a) + last * sizeof(BlockQ8_0), act_bytes,
                     TileOut{tail, R});
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) o.put(r, t, _mm512_reduce_add_ps(acc[r][t]) + tail[t * R + r]);
}

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
    default:
      return x86_kernels(type);
  }
}

}  // namespace

void avx512vnni_kernels(gguf::TensorType type, VecDotFn* vec_dot, DotTileFn* dot_tile) {
  X86Kernels k = zmm_kernels(type);
  *vec_dot = k.vec_dot, *dot_tile = k.dot_tile;
}
const VectorOps& avx512vnni_vector_ops() {
  return kX86VectorOps;
}
}  // namespace ember::cpu
