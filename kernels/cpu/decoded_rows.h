// Weight rows of the K family decoded a super-block at a time into signed bytes and integer
// scales: the form the packed products (gemm_avx512.cpp) and the NEON tiles (dot_neon.cpp)
// compute with. Plain C++, the element order of the scalar reference.
#pragma once

#include <cstdint>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/fp16.h"

namespace ember::cpu {

// One row's block as the kernels want it.
struct DecodedRow {
  int8_t v[kQKK];     // values, offsets applied (kElems of them)
  int32_t scale[16];  // integer group scales (K family)
  int16_t min[16];    // integer minimums per group of kMinElems activations
  float d = 0;        // multiplies S
  float m = 0;        // multiplies M: −dmin (K family) or the block minimum (Q4_1, Q5_1)
};

// Each format: Block; kElems per block; kGroups integer scale groups per block (0: none);
// kMinElems activations per minimum (0: no minimums); decode(block, row). Per (row, token) the
// kernels then compute S = Σ_g scale_g·Σ_{i∈g} v_i·a_i and M = Σ_h min_h·Σ_{i∈h} a_i, and
// acc = fma(float(S), d·d_a, acc), acc = fma(float(M), m·d_a, acc) (dot_x86.h).
template <bool kFifthBit, class B>
void decode_q45_k(const B& b, DecodedRow& out) {
  for (int g = 0; g < 8; ++g) {
    uint8_t sc, m;
    kquant_scale_min(b.scales, g, &sc, &m);
    out.scale[g] = sc, out.min[g] = m;
  }
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 32; ++l) {
      int lo = b.qs[32 * j + l] & 15, hi = b.qs[32 * j + l] >> 4;
      if constexpr (kFifthBit)
        lo |= ((b.qh[l] >> (2 * j)) & 1) << 4, hi |= ((b.qh[l] >> (2 * j + 1)) & 1) << 4;
      out.v[64 * j + l] = static_cast<int8_t>(lo);
      out.v[64 * j + 32 + l] = static_cast<int8_t>(hi);
    }
  out.d = fp16_to_f32(b.d), out.m = -fp16_to_f32(b.dmin);
}

template <class B, bool kFifthBit>
struct K45Rows {
  using Block = B;
  static constexpr int kElems = kQKK, kGroups = 8, kMinElems = 32;
  static void decode(const Block& b, DecodedRow& out) { decode_q45_k<kFifthBit>(b, out); }
};
using K4Rows = K45Rows<BlockQ4_K, false>;
using K5Rows = K45Rows<BlockQ5_K, true>;

struct K6Rows {
  using Block = BlockQ6_K;
  static constexpr int kElems = kQKK, kGroups = 16, kMinElems = 0;
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
struct K3Rows {
  using Block = BlockQ3_K;
  static constexpr int kElems = kQKK, kGroups = 16, kMinElems = 0;
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
struct K2Rows {
  using Block = BlockQ2_K;
  static constexpr int kElems = kQKK, kGroups = 16, kMinElems = 16;
  static void decode(const Block& b, DecodedRow& out) {
    for (int g = 0; g < 16; ++g) out.scale[g] = b.scales[g] & 15, out.min[g] = b.scales[g] >> 4;
    for (int k = 0; k < 8; ++k) {
      const int h = k / 4, s = k % 4;
      for (int l = 0; l < 32; ++l)
        out.v[32 * k + l] = static_cast<int8_t>((b.qs[32 * h + l] >> (2 * s)) & 3);
    }
    out.d = fp16_to_f32(b.d), out.m = -fp16_to_f32(b.dmin);
  }
};

struct IQ4XSRows {
  using Block = BlockIQ4_XS;
  static constexpr int kElems = kQKK, kGroups = 8, kMinElems = 0;
  static void decode(const Block& b, DecodedRow& out) {
    for (int g = 0; g < 8; ++g) {
      const int low = (b.scales_l[g / 2] >> (4 * (g % 2))) & 0x0f;
      const int high = (b.scales_h >> (2 * g)) & 3;
      out.scale[g] = (low | (high << 4)) - 32;
      for (int l = 0; l < 16; ++l) {  // nibbles ordered as in Q4_0 within each group of 32
        out.v[32 * g + l] = kIQ4Values[b.qs[16 * g + l] & 15];
        out.v[32 * g + 16 + l] = kIQ4Values[b.qs[16 * g + l] >> 4];
      }
    }
    out.d = fp16_to_f32(b.d);
  }
};

}  // namespace ember::cpu
