// Prompt processing for the K family (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) with AVX-512 VNNI: the
// PackedGemm of kernels.h with tokens in lanes.
//
// A packed group holds 16 tokens' Q8_K activations transposed, so that one 512-bit register
// carries four consecutive activations of each of the 16 tokens (as unsigned bytes a + 128). A
// packed panel holds 8 weight rows decoded to signed bytes (offsets applied: q − 32 for Q6_K).
// vpdpbusd of a register of activations with four weights broadcast from the panel advances
// 16 (row, token) dot products by four elements; a row's group scales, minimums and float
// scales are then broadcast scalars applied to 16 tokens at once, so per 64 multiply-adds the
// kernel spends one instruction plus a share of the per-group scaling.
//
// The +128 that makes activations unsigned comes back out per row: Σ v·(a + 128) = Σ v·a +
// 128·Σ v, and 128·Σ_g sc_g·Σ_{i in g} v_i is a constant of the panel. So each (row, token,
// super-block) gets exactly the integers S and M of the tiles in dot_x86.h, and the float
// operations are theirs: results equal vec_dot's bit for bit.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/kernels.h"

namespace ember::cpu {
namespace {

constexpr int kRows = 8;           // weight rows per panel
constexpr int kTokens = 16;        // tokens per packed group: one per 32-bit lane
constexpr int kChunks = kQKK / 4;  // four-element chunks per super-block

// One row's super-block as the kernel wants it.
struct DecodedRow {
  int8_t v[kQKK];     // values, offsets applied
  int32_t scale[16];  // group scales (F::kGroups of them)
  int16_t min[16];    // minimums per group of F::kMinElems activations (formats with minimums)
  float d = 0, dmin = 0;
};

// Each format: kGroups scale groups per super-block; kMinElems the activations each minimum
// multiplies (0: no minimums); decode() → DecodedRow.
struct Q4KRows {
  using Block = BlockQ4_K;
  static constexpr int kGroups = 8, kMinElems = 32;
  static void decode(const Block& b, DecodedRow& out) {
    for (int g = 0; g < 8; ++g) {
      uint8_t sc, m;
      kquant_scale_min(b.scales, g, &sc, &m);
      out.scale[g] = sc, out.min[g] = m;
    }
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) {
        out.v[64 * j + l] = static_cast<int8_t>(b.qs[32 * j + l] & 15);
        out.v[64 * j + 32 + l] = static_cast<int8_t>(b.qs[32 * j + l] >> 4);
      }
    out.d = fp16_to_f32(b.d), out.dmin = fp16_to_f32(b.dmin);
  }
};
struct Q5KRows {
  using Block = BlockQ5_K;
  static constexpr int kGroups = 8, kMinElems = 32;
  static void decode(const Block& b, DecodedRow& out) {
    for (int g = 0; g < 8; ++g) {
      uint8_t sc, m;
      kquant_scale_min(b.scales, g, &sc, &m);
      out.scale[g] = sc, out.min[g] = m;
    }
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) {
        const int lo = (b.qs[32 * j + l] & 15) | (((b.qh[l] >> (2 * j)) & 1) << 4);
        const int hi = (b.qs[32 * j + l] >> 4) | (((b.qh[l] >> (2 * j + 1)) & 1) << 4);
        out.v[64 * j + l] = static_cast<int8_t>(lo);
        out.v[64 * j + 32 + l] = static_cast<int8_t>(hi);
      }
    out.d = fp16_to_f32(b.d), out.dmin = fp16_to_f32(b.dmin);
  }
};
struct Q6KRows {
  using Block = BlockQ6_K;
  static constexpr int kGroups = 16, kMinElems = 0;
  static void decode(const Block& b, DecodedRow& out) {
    for (int g = 0; g < 16; ++g) out.scale[g] = b.scales[g];
    for (int k = 0; k < 8; ++k) {  // elements 32k..32k+31
      const int h = k / 4, kk = k % 4;
      const uint8_t* ql = b.ql + 64 * h + 32 * (kk & 1);
      for (int l = 0; l < 32; ++l) {
        const int low = (kk < 2 ? ql[l] : ql[l] >> 4) & 15;
        const int high = (b.qh[32 * h + l] >> (2 * kk)) & 3;
        out.v[32 * k + l] = static_cast<int8_t>((low | (high << 4)) - 32);
      }
    }
    out.d = fp16_to_f32(b.d);
  }
};
struct Q3KRows {
  using Block = BlockQ3_K;
  static constexpr int kGroups = 16, kMinElems = 0;
  static void decode(const Block& b, DecodedRow& out) {
    int8_t sc[16];
    q3k_scales(b.scales, sc);
    for (int g = 0; g < 16; ++g) out.scale[g] = sc[g];
    for (int k = 0; k < 8; ++k) {
      const int h = k / 4, s = k % 4;
      for (int l = 0; l < 32; ++l) {
        const int low = (b.qs[32 * h + l] >> (2 * s)) & 3;
        const int high = (b.hmask[l] >> k) & 1;
        out.v[32 * k + l] = static_cast<int8_t>((low | (high << 2)) - 4);
      }
    }
    out.d = fp16_to_f32(b.d);
  }
};
struct Q2KRows {
  using Block = BlockQ2_K;
  static constexpr int kGroups = 16, kMinElems = 16;
  static void decode(const Block& b, DecodedRow& out) {
    for (int g = 0; g < 16; ++g) out.scale[g] = b.scales[g] & 15, out.min[g] = b.scales[g] >> 4;
    for (int k = 0; k < 8; ++k) {
      const int h = k / 4, s = k % 4;
      for (int l = 0; l < 32; ++l)
        out.v[32 * k + l] = static_cast<int8_t>((b.qs[32 * h + l] >> (2 * s)) & 3);
    }
    out.d = fp16_to_f32(b.d), out.dmin = fp16_to_f32(b.dmin);
  }
};

// Pairs of activation sums (two int16 in a 32-bit lane) that the minimums multiply.
template <class F>
constexpr int min_pairs() {
  return F::kMinElems == 0 ? 0 : kQKK / F::kMinElems / 2;
}

// ---- packed activations: per super-block, 16 tokens ----
// [64 chunks][16 tokens][4 bytes a + 128] | d [16 floats] | sums [pairs][16 tokens][2 × int16]
template <class F>
constexpr size_t act_superblock_bytes() {
  return kChunks * 64 + 64 + 64 * min_pairs<F>();
}

template <class F>
size_t act_group_bytes(int64_t cols) {
  return static_cast<size_t>(cols / kQKK) * act_superblock_bytes<F>();
}

template <class F>
void pack_act(const void* act_rows, size_t act_stride, int tokens, int64_t cols, void* packed) {
  auto* out = static_cast<uint8_t*>(packed);
  const int64_t superblocks = cols / kQKK;
  if (tokens < kTokens) std::memset(out, 0, act_group_bytes<F>(cols));
  for (int t = 0; t < tokens; ++t) {
    const auto* y =
        reinterpret_cast<const BlockQ8_K*>(static_cast<const uint8_t*>(act_rows) + t * act_stride);
    for (int64_t i = 0; i < superblocks; ++i) {
      uint8_t* base = out + i * act_superblock_bytes<F>();
      for (int c = 0; c < kChunks; ++c) {
        uint32_t four;
        std::memcpy(&four, y[i].qs + 4 * c, 4);
        four ^= 0x80808080u;  // a + 128 in each byte
        std::memcpy(base + 64 * c + 4 * t, &four, 4);
      }
      std::memcpy(base + kChunks * 64 + 4 * t, &y[i].d, 4);
      for (int p = 0; p < min_pairs<F>(); ++p) {
        int16_t pair[2];
        for (int h = 0; h < 2; ++h) {
          const int group = 2 * p + h;  // of F::kMinElems activations = kMinElems / 16 bsums
          int sum = 0;
          for (int s = 0; s < F::kMinElems / 16; ++s)
            sum += y[i].bsums[group * (F::kMinElems / 16) + s];
          pair[h] = static_cast<int16_t>(sum);
        }
        std::memcpy(base + kChunks * 64 + 64 + 64 * p + 4 * t, pair, 4);
      }
    }
  }
}

// ---- packed panels: per super-block, 8 rows ----
// values [8 rows][256] | scales [8][kGroups] int32 | correction [8] int32 (128·Σ_g sc_g·Σ v)
// | minimum pairs [8][pairs] (2 × int16) | d [8] | dmin [8]
template <class F>
struct PanelLayout {
  static constexpr size_t kValues = 0;
  static constexpr size_t kScales = kRows * kQKK;
  static constexpr size_t kCorrection = kScales + 4 * kRows * F::kGroups;
  static constexpr size_t kMins = kCorrection + 4 * kRows;
  static constexpr size_t kD = kMins + 4 * kRows * min_pairs<F>();
  static constexpr size_t kDmin = kD + 4 * kRows;
  static constexpr size_t kBytes = kDmin + 4 * kRows;
};

template <class F>
size_t panel_bytes(int64_t cols) {
  return static_cast<size_t>(cols / kQKK) * PanelLayout<F>::kBytes;
}

template <class F>
void pack_panel(const void* weights, size_t row_bytes, int64_t cols, void* panel) {
  using L = PanelLayout<F>;
  constexpr int kGroupElems = kQKK / F::kGroups;
  auto* out = static_cast<uint8_t*>(panel);
  DecodedRow row;
  for (int64_t i = 0; i < cols / kQKK; ++i, out += L::kBytes) {
    for (int r = 0; r < kRows; ++r) {
      const auto* blocks = reinterpret_cast<const typename F::Block*>(
          static_cast<const uint8_t*>(weights) + r * row_bytes);
      F::decode(blocks[i], row);
      std::memcpy(out + L::kValues + r * kQKK, row.v, kQKK);
      int32_t correction = 0;
      for (int g = 0; g < F::kGroups; ++g) {
        int32_t value_sum = 0;
        for (int e = 0; e < kGroupElems; ++e) value_sum += row.v[g * kGroupElems + e];
        correction += 128 * row.scale[g] * value_sum;
      }
      std::memcpy(out + L::kScales + 4 * r * F::kGroups, row.scale, 4 * F::kGroups);
      std::memcpy(out + L::kCorrection + 4 * r, &correction, 4);
      for (int p = 0; p < min_pairs<F>(); ++p)
        std::memcpy(out + L::kMins + 4 * (r * min_pairs<F>() + p), row.min + 2 * p, 4);
      std::memcpy(out + L::kD + 4 * r, &row.d, 4);
      std::memcpy(out + L::kDmin + 4 * r, &row.dmin, 4);
    }
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
void panel_group(const uint8_t* panel, int64_t superblocks, const uint8_t* act, float* out) {
  using L = PanelLayout<F>;
  constexpr int kChunksPerGroup = kChunks / F::kGroups;
  __m512 acc[kRows];
  for (int r = 0; r < kRows; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t i = 0; i < superblocks; ++i, panel += L::kBytes, act += act_superblock_bytes<F>()) {
    __m512i s[kRows];
    for (int r = 0; r < kRows; ++r) s[r] = _mm512_setzero_si512();
    for (int g = 0; g < F::kGroups; ++g) {
      __m512i dot[kRows];
      for (int r = 0; r < kRows; ++r) dot[r] = _mm512_setzero_si512();
      for (int c = g * kChunksPerGroup; c < (g + 1) * kChunksPerGroup; ++c) {
        const __m512i a = _mm512_loadu_si512(act + 64 * c);
        for (int r = 0; r < kRows; ++r)
          dot[r] =
              _mm512_dpbusd_epi32(dot[r], a, broadcast32(panel + L::kValues + r * kQKK + 4 * c));
      }
      for (int r = 0; r < kRows; ++r)
        s[r] = _mm512_add_epi32(
            s[r],
            _mm512_mullo_epi32(dot[r], broadcast32(panel + L::kScales + 4 * (r * F::kGroups + g))));
    }
    const __m512 da = _mm512_loadu_ps(act + kChunks * 64);
    for (int r = 0; r < kRows; ++r) {
      const __m512i sum = _mm512_sub_epi32(s[r], broadcast32(panel + L::kCorrection + 4 * r));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum),
                               _mm512_mul_ps(broadcast_f32(panel + L::kD + 4 * r), da), acc[r]);
      if constexpr (min_pairs<F>() > 0) {
        __m512i m = _mm512_setzero_si512();
        for (int p = 0; p < min_pairs<F>(); ++p)
          m = _mm512_dpwssd_epi32(m, _mm512_loadu_si512(act + kChunks * 64 + 64 + 64 * p),
                                  broadcast32(panel + L::kMins + 4 * (r * min_pairs<F>() + p)));
        acc[r] =
            _mm512_fnmadd_ps(_mm512_cvtepi32_ps(m),
                             _mm512_mul_ps(broadcast_f32(panel + L::kDmin + 4 * r), da), acc[r]);
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
    panel_group<F>(static_cast<const uint8_t*>(panel), cols / kQKK, act, results);
    const int64_t n = std::min<int64_t>(kTokens, tokens - t0);
    for (int64_t t = 0; t < n; ++t)
      for (int r = 0; r < kRows; ++r) out[(t0 + t) * out_stride + r] = results[r * kTokens + t];
  }
}

template <class F>
constexpr PackedGemm kPackedK = {
    kQKK,        kRows,          kTokens,       256,          act_group_bytes<F>,
    pack_act<F>, panel_bytes<F>, pack_panel<F>, panel_gemm<F>};

}  // namespace

const PackedGemm* avx512vnni_gemm_k(gguf::TensorType type) {
  using gguf::TensorType;
  switch (type) {
    case TensorType::Q2_K:
      return &kPackedK<Q2KRows>;
    case TensorType::Q3_K:
      return &kPackedK<Q3KRows>;
    case TensorType::Q4_K:
      return &kPackedK<Q4KRows>;
    case TensorType::Q5_K:
      return &kPackedK<Q5KRows>;
    case TensorType::Q6_K:
      return &kPackedK<Q6KRows>;
    default:
      return nullptr;
  }
}

}  // namespace ember::cpu
