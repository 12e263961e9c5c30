// Byte layouts of the GGUF block formats ember computes with. Each struct is one block; a row of
// n elements is n / block_size consecutive blocks. Half-precision fields are raw IEEE fp16 bits.
// Element order inside a block is spelled out by the scalar reference (reference.cpp), which
// follows the gguf Python package's quants.py.
#pragma once

#include <cstdint>
#include <cstring>

namespace ember::cpu {

constexpr int kQK = 32;    // elements per block of the 32-element family
constexpr int kQKK = 256;  // elements per super-block of the K family

// x = d·(q − 8), q a nibble: elements 0..15 in the low nibbles of qs, 16..31 in the high ones.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// x = d·q + m.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
// x = d·(q − 16), q = nibble | bit j of qh (as a little-endian u32) << 4.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d·q + m, q as in Q5_0.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d·q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// x = d·q; s = d·Σq, so that the minimum of Q4_1/Q5_1 weights costs one multiply per block.
struct BlockQ8_1 {
  uint16_t d, s;
  int8_t qs[kQK];
};
// 16 groups of 16: x = d·(scales[g] & 15)·q − dmin·(scales[g] >> 4), q two bits.
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d, dmin;
};
// 16 groups of 16: x = d·(s − 32)·(q − 4·!hbit), s six bits packed in `scales`, q two bits.
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
// 8 groups of 32: x = d·sc·q − dmin·m, six-bit sc and m packed in `scales`, q a nibble.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
// As Q4_K with a fifth bit per element in qh.
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
// 16 groups of 16: x = d·scales[g]·(q − 32), q = four bits of ql | two bits of qh << 4.
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
// Activations for the K family: x = d·q; bsums[i] = Σ q over elements 16i..16i+15.
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};
// x = d·kIQ4Values[q], q nibbles ordered as in Q4_0.
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// 8 groups of 32: x = d·(s − 32)·kIQ4Values[q], six-bit s = scales_l nibble | scales_h bits << 4.
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQKK / 64];
  uint8_t qs[kQKK / 2];
};

// The non-linear grid of IQ4_NL and IQ4_XS.
inline constexpr int8_t kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);

// Unpacks the six-bit scale and min of group j (0..7) of a Q4_K/Q5_K block.
inline void kquant_scale_min(const uint8_t* scales, int j, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = scales[j] & 63;
    *min = scales[j + 4] & 63;
  } else {
    *scale = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
    *min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Unpacks the sixteen signed six-bit group scales of a Q3_K block (value − 32 already applied).
// Group i has its low four bits in byte i (i < 8, low nibble) or byte i − 8 (high nibble) and its
// high two bits in byte 8 + i % 4 at bit 2·(i / 4); done four groups per 32-bit word.
inline void q3k_scales(const uint8_t* packed, int8_t out[16]) {
  uint32_t a, b, c;
  std::memcpy(&a, packed, 4);
  std::memcpy(&b, packed + 4, 4);
  std::memcpy(&c, packed + 8, 4);
  const uint32_t low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
  uint32_t words[4] = {
      (a & low4) | ((c & low2) << 4),
      (b & low4) | (((c >> 2) & low2) << 4),
      ((a >> 4) & low4) | (((c >> 4) & low2) << 4),
      ((b >> 4) & low4) | (((c >> 6) & low2) << 4),
  };
  uint8_t bytes[16];
  std::memcpy(bytes, words, 16);
  for (int i = 0; i < 16; ++i) out[i] = static_cast<int8_t>(bytes[i] - 32);
}

}  // namespace ember::cpu
