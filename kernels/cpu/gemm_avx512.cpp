// Prompt processing with AVX-512 VNNI: the PackedGemm of kernels.h, tokens in lanes, for the
// 32-element family (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL; activations Q8_0) and the K family
// (Q2_K .. Q6_K and IQ4_XS; activations Q8_K).
//
// A packed group holds 16 tokens' activations transposed, so that one 512-bit register carries
// four consecutive activations of each of the 16 tokens (as unsigned bytes a + 128). A packed
// panel holds 8 weight rows decoded to signed bytes v (offsets applied: q − 8 for Q4_0, q − 32
// for Q6_K). vpdpbusd of a register of activations with four weights broadcast from the panel
// advances 16 (row, token) dot products by four elements; a row's integer group scales,
// minimums and float scales are then broadcast scalars applied to 16 tokens at once. Per 64
// multiply-adds the kernel spends one instruction plus its share of the per-block scaling.
//
// The +128 comes back out per row: Σ v·(a + 128) = Σ v·a + 128·Σ v, and 128·Σ_g sc_g·Σ_{i∈g} v_i
// is a constant of the panel that seeds the sum. Each (row, token, block) thus gets exactly the
// integers of the tiles — S (scale-weighted Σ v·a) and M (minimum-weighted Σ a) — and the float
// operations are theirs (dot_x86.h for the K family, dot_avx512vnni.cpp for the 32-element one),
//   acc = fma(float(S), d·d_a, acc);   acc = fma(float(M), f·d_a, acc)   (f = −dmin or m),
// so prompt processing equals vec_dot bit for bit.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/decoded_rows.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/kernels.h"

namespace ember::cpu {
namespace {

constexpr int kRows = 8;     // weight rows per panel
constexpr int kTokens = 16;  // tokens per packed group: one per 32-bit lane

// ---- activation formats ----

struct ActQ8_0 {
  using Block = BlockQ8_0;
  static float scale(const Block& b) { return fp16_to_f32(b.d); }
  static int sum16(const Block& b, int h) {  // Σ of elements 16h..16h+15
    int s = 0;
    for (int i = 0; i < 16; ++i) s += b.qs[16 * h + i];
    return s;
  }
};
struct ActQ8_K {
  using Block = BlockQ8_K;
  static float scale(const Block& b) { return b.d; }
  static int sum16(const Block& b, int h) { return b.bsums[h]; }
};

// ---- weight formats ----
// Each: Block and Act; kElems per block; kGroups integer scale groups per block (0: none);
// kMinElems activations per minimum (0: no minimums); decode(block, row).

// The 32 nibbles of a block as bytes in element order (low nibbles, then high ones).
inline __m256i nibbles32(const uint8_t* qs) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), _mm256_set1_epi8(0x0f));
}

template <int kOffset, bool kFifthBit, bool kAffine, class B>
void decode_32_nibbles(const B& b, DecodedRow& out) {
  __m256i q = nibbles32(b.qs);
  if constexpr (kFifthBit) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);  // bit j: fifth bit of element j
    q = _mm256_or_si256(q, _mm256_maskz_mov_epi8(qh, _mm256_set1_epi8(0x10)));
  }
  q = _mm256_sub_epi8(q, _mm256_set1_epi8(kOffset));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.v), q);
  out.d = fp16_to_f32(b.d);
  if constexpr (kAffine) out.min[0] = out.min[1] = 1, out.m = fp16_to_f32(b.m);
}

template <class B, int kOffset, bool kFifthBit, bool kAffine>
struct Nibbles32 {
  using Block = B;
  using Act = ActQ8_0;
  static constexpr int kElems = kQK, kGroups = 0, kMinElems = kAffine ? 16 : 0;
  static void decode(const Block& b, DecodedRow& out) {
    decode_32_nibbles<kOffset, kFifthBit, kAffine>(b, out);
  }
};
using Q4_0Rows = Nibbles32<BlockQ4_0, 8, false, false>;
using Q4_1Rows = Nibbles32<BlockQ4_1, 0, false, true>;
using Q5_0Rows = Nibbles32<BlockQ5_0, 16, true, false>;
using Q5_1Rows = Nibbles32<BlockQ5_1, 0, true, true>;

struct Q8_0Rows {
  using Block = BlockQ8_0;
  using Act = ActQ8_0;
  static constexpr int kElems = kQK, kGroups = 0, kMinElems = 0;
  static void decode(const Block& b, DecodedRow& out) {
    std::memcpy(out.v, b.qs, kQK);
    out.d = fp16_to_f32(b.d);
  }
};
struct IQ4_NLRows {
  using Block = BlockIQ4_NL;
  using Act = ActQ8_0;
  static constexpr int kElems = kQK, kGroups = 0, kMinElems = 0;
  static void decode(const Block& b, DecodedRow& out) {
    const __m256i grid =
        _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4Values)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.v),
                        _mm256_shuffle_epi8(grid, nibbles32(b.qs)));
    out.d = fp16_to_f32(b.d);
  }
};

// The K family, decoded as in decoded_rows.h, with Q8_K activations.
template <class D>
struct WithQ8K : D {
  using Act = ActQ8_K;
};
using Q4KRows = WithQ8K<K4Rows>;
using Q5KRows = WithQ8K<K5Rows>;
using Q6KRows = WithQ8K<K6Rows>;
using Q3KRows = WithQ8K<K3Rows>;
using Q2KRows = WithQ8K<K2Rows>;
using IQ4XSQ8KRows = WithQ8K<IQ4XSRows>;

template <class F>
constexpr int chunks() {  // four-element chunks per block
  return F::kElems / 4;
}
// Pairs of activation sums (two int16 in a 32-bit lane) that the minimums multiply.
template <class F>
constexpr int min_pairs() {
  return F::kMinElems == 0 ? 0 : F::kElems / F::kMinElems / 2;
}

// ---- packed activations: per block, 16 tokens ----
// [chunks][16 tokens][4 bytes a + 128] | d_a [16 floats] | sums [pairs][16 tokens][2 × int16]
template <class F>
struct ActLayout {
  static constexpr size_t kScales = 64 * chunks<F>();
  static constexpr size_t kSums = kScales + 64;
  static constexpr size_t kBytes = kSums + 64 * min_pairs<F>();
};

template <class F>
size_t act_group_bytes(int64_t cols) {
  return static_cast<size_t>(cols / F::kElems) * ActLayout<F>::kBytes;
}

template <class F>
void pack_act(const void* act_rows, size_t act_stride, int tokens, int64_t cols, void* packed) {
  using L = ActLayout<F>;
  using Act = typename F::Act;
  auto* out = static_cast<uint8_t*>(packed);
  if (tokens < kTokens) std::memset(out, 0, act_group_bytes<F>(cols));
  for (int t = 0; t < tokens; ++t) {
    const auto* y = reinterpret_cast<const typename Act::Block*>(
        static_cast<const uint8_t*>(act_rows) + t * act_stride);
    for (int64_t i = 0; i < cols / F::kElems; ++i) {
      uint8_t* base = out + i * L::kBytes;
      for (int c = 0; c < chunks<F>(); ++c) {
        uint32_t four;
        std::memcpy(&four, y[i].qs + 4 * c, 4);
        four ^= 0x80808080u;  // a + 128 in each byte
        std::memcpy(base + 64 * c + 4 * t, &four, 4);
      }
      const float da = Act::scale(y[i]);
      std::memcpy(base + L::kScales + 4 * t, &da, 4);
      constexpr int kSixteens = F::kMinElems / 16;  // sums of 16 per minimum
      for (int p = 0; p < min_pairs<F>(); ++p) {
        int16_t pair[2];
        for (int h = 0; h < 2; ++h) {
          int sum = 0;
          for (int s = 0; s < kSixteens; ++s) sum += Act::sum16(y[i], (2 * p + h) * kSixteens + s);
          pair[h] = static_cast<int16_t>(sum);
        }
        std::memcpy(base + L::kSums + 64 * p + 4 * t, pair, 4);
      }
    }
  }
}

// ---- packed panels: per block, 8 rows ----
// values [8 rows][kElems] | scales [8][kGroups] int32 | seed [8] int32 (−128·Σ_g sc_g·Σ v)
// | minimum pairs [8][pairs] (2 × int16) | d [8] | m [8]
template <class F>
struct PanelLayout {
  static constexpr size_t kScales = kRows * F::kElems;
  static constexpr size_t kSeed = kScales + 4 * kRows * F::kGroups;
  static constexpr size_t kMins = kSeed + 4 * kRows;
  static constexpr size_t kD = kMins + 4 * kRows * min_pairs<F>();
  static constexpr size_t kM = kD + 4 * kRows;
  static constexpr size_t kBytes = kM + 4 * kRows;
};

template <class F>
size_t panel_bytes(int64_t cols) {
  return static_cast<size_t>(cols / F::kElems) * PanelLayout<F>::kBytes;
}

// Σ of n (a multiple of 16) signed bytes.
inline int32_t sum_int8(const int8_t* p, int n) {
  __m128i sums = _mm_setzero_si128();  // two 64-bit sums of the bytes + 128
  for (int i = 0; i < n; i += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    sums = _mm_add_epi64(sums,
                         _mm_sad_epu8(_mm_xor_si128(x, _mm_set1_epi8(-128)), _mm_setzero_si128()));
  }
  return static_cast<int32_t>(
             _mm_cvtsi128_si64(_mm_add_epi64(sums, _mm_unpackhi_epi64(sums, sums)))) -
         128 * n;
}

// One block of a panel from its rows decoded.
template <class F>
void pack_block(const DecodedRow* rows, int64_t block, void* panel) {
  using L = PanelLayout<F>;
  constexpr int kGroupElems = F::kGroups ? F::kElems / F::kGroups : F::kElems;
  uint8_t* out = static_cast<uint8_t*>(panel) + block * L::kBytes;
  for (int r = 0; r < kRows; ++r) {
    const DecodedRow& row = rows[r];
    std::memcpy(out + r * F::kElems, row.v, F::kElems);
    int32_t seed = 0;
    for (int g = 0; g < std::max(1, F::kGroups); ++g)
      seed -=
          128 * (F::kGroups ? row.scale[g] : 1) * sum_int8(row.v + g * kGroupElems, kGroupElems);
    std::memcpy(out + L::kScales + 4 * r * F::kGroups, row.scale, 4 * F::kGroups);
    std::memcpy(out + L::kSeed + 4 * r, &seed, 4);
    for (int p = 0; p < min_pairs<F>(); ++p)
      std::memcpy(out + L::kMins + 4 * (r * min_pairs<F>() + p), row.min + 2 * p, 4);
    std::memcpy(out + L::kD + 4 * r, &row.d, 4);
    std::memcpy(out + L::kM + 4 * r, &row.m, 4);
  }
}

template <class F>
void pack_panel(const void* weights, size_t row_bytes, int64_t cols, void* panel) {
  DecodedRow rows[kRows];
  for (int64_t i = 0; i < cols / F::kElems; ++i) {
    for (int r = 0; r < kRows; ++r) {
      const auto* blocks = reinterpret_cast<const typename F::Block*>(
          static_cast<const uint8_t*>(weights) + r * row_bytes);
      F::decode(blocks[i], rows[r]);
    }
    pack_block<F>(rows, i, panel);
  }
}

inline __m512i broadcast32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
inline __m512 broadcast_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_ps(v);
}

// The 8 rows of a panel × one packed group of 16 tokens: out[r·16 + t].
template <class F>
void panel_group(const uint8_t* panel, int64_t blocks, const uint8_t* act, float* out) {
  using P = PanelLayout<F>;
  using A = ActLayout<F>;
  __m512 acc[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < blocks; ++i, panel += P::kBytes, act += A::kBytes) {
    __m512i s[kRows];
    for (int r = 0; r < kRows; ++r) s[r] = broadcast32(panel + P::kSeed + 4 * r);
    if constexpr (F::kGroups == 0) {
      for (int c = 0; c < chunks<F>(); ++c) {
        const __m512i a = _mm512_loadu_si512(act + 64 * c);
        for (int r = 0; r < kRows; ++r)
          s[r] = _mm512_dpbusd_epi32(s[r], a, broadcast32(panel + r * F::kElems + 4 * c));
      }
    } else {
      constexpr int kChunksPerGroup = chunks<F>() / F::kGroups;
      for (int g = 0; g < F::kGroups; ++g) {
        __m512i dot[kRows];
        for (int r = 0; r < kRows; ++r) dot[r] = _mm512_setzero_si512();
        for (int c = g * kChunksPerGroup; c < (g + 1) * kChunksPerGroup; ++c) {
          const __m512i a = _mm512_loadu_si512(act + 64 * c);
          for (int r = 0; r < kRows; ++r)
            dot[r] = _mm512_dpbusd_epi32(dot[r], a, broadcast32(panel + r * F::kElems + 4 * c));
        }
        for (int r = 0; r < kRows; ++r)
          s[r] = _mm512_add_epi32(
              s[r], _mm512_mullo_epi32(dot[r],
                                       broadcast32(panel + P::kScales + 4 * (r * F::kGroups + g))));
      }
    }
    const __m512 da = _mm512_loadu_ps(act + A::kScales);
    for (int r = 0; r < kRows; ++r) {
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]),
                               _mm512_mul_ps(broadcast_f32(panel + P::kD + 4 * r), da), acc[r]);
      if constexpr (min_pairs<F>() > 0) {
        __m512i m = _mm512_setzero_si512();
        for (int p = 0; p < min_pairs<F>(); ++p)
          m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(act + A::kSums + 64 * p),
                                  broadcast32(panel + P::kMins + 4 * (r * min_pairs<F>() + p)));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m),
                                 _mm512_mul_ps(broadcast_f32(panel + P::kM + 4 * r), da), acc[r]);
      }
    }
  }
  for (int r = 0; r < kRows; ++r) _mm512_storeu_ps(out + r * kTokens, acc[r]);
}

template <class F>
void panel_gemm(const void* panel, int64_t cols, const void* packed_act, int64_t tokens, float* out,
                size_t out_stride) {
  const auto* act = static_cast<const uint8_t*>(packed_act);
  const size_t group_bytes = act_group_bytes<F>(cols);
  alignas(64) float results[kRows * kTokens];
  for (int64_t t0 = 0; t0 < tokens; t0 += kTokens, act += group_bytes) {
    panel_group<F>(static_cast<const uint8_t*>(panel), cols / F::kElems, act, results);
    const int64_t n = std::min<int64_t>(kTokens, tokens - t0);
    for (int64_t t = 0; t < n; ++t)
      for (int r = 0; r < kRows; ++r) out[(t0 + t) * out_stride + r] = results[r * kTokens + t];
  }
}

// Each panel serves 256 tokens before the next is decoded: their packed activations (at most
// about 1.5 MB for 5632 columns) stay in a core's L2 cache.
template <class F>
constexpr PackedGemm kPacked = {F::kElems,          kRows,        kTokens,        256,
                                act_group_bytes<F>, pack_act<F>,  panel_bytes<F>, pack_panel<F>,
                                pack_block<F>,      panel_gemm<F>};

}  // namespace

const PackedGemm* avx512vnni_gemm_32(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::Q4_0:
      return &kPacked<Q4_0Rows>;
    case TensorType::Q4_1:
      return &kPacked<Q4_1Rows>;
    case TensorType::Q5_0:
      return &kPacked<Q5_0Rows>;
    case TensorType::Q5_1:
      return &kPacked<Q5_1Rows>;
    case TensorType::Q8_0:
      return &kPacked<Q8_0Rows>;
    case TensorType::IQ4_NL:
      return &kPacked<IQ4_NLRows>;
    default:
      return nullptr;
  }
}

const PackedGemm* avx512vnni_gemm_k(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::Q2_K:
      return &kPacked<Q2KRows>;
    case TensorType::Q3_K:
      return &kPacked<Q3KRows>;
    case TensorType::Q4_K:
      return &kPacked<Q4KRows>;
    case TensorType::Q5_K:
      return &kPacked<Q5KRows>;
    case TensorType::Q6_K:
      return &kPacked<Q6KRows>;
    case TensorType::IQ4_XS:
      return &kPacked<IQ4XSQ8KRows>;
    default:
      return nullptr;
  }
}

}  // namespace ember::cpu
