// One dequantisation function per GGUF block format, chosen at build time by a TYPE_* define
// (CMakeLists.txt compiles each shader that includes this once per format). Layouts and element
// order are those of kernels/cpu/block_formats.h and the scalar reference
// (kernels/cpu/reference_dequantize.cpp), which follow the gguf Python package's quants.py.
//
// The weights are bound at binding 0 as 32-bit words and addressed in bytes, because blocks of
// 18, 22 or 110 bytes leave rows at any even byte offset; the host pads every weight buffer by
// one word so that reading the word after the last byte stays inside it.
//
//   void dequant16(uint row, uint c, uint cols, out float v[16])
// writes elements 16c .. 16c+15 of the row that starts at byte `row` (elements at or beyond
// `cols` are 0; only the float formats have rows that are not whole chunks).

layout(std430, binding = 0) readonly buffer Weights { uint wq[]; };

uint u8(uint off) { return (wq[off >> 2] >> ((off & 3u) << 3)) & 0xFFu; }
uint u16(uint off) { return (wq[off >> 2] >> ((off & 2u) << 3)) & 0xFFFFu; }  // off even
uint u32(uint off) {  // off even, so a word may straddle two
  const uint s = (off & 3u) << 3, lo = wq[off >> 2];
  return s == 0u ? lo : (lo >> s) | (wq[(off >> 2) + 1u] << (32u - s));
}
float f16(uint off) { return unpackHalf2x16(u16(off)).x; }

// The 16 bytes at `off`, as four little-endian words, and byte i of them.
void load16(uint off, out uint q[4]) {
  for (uint i = 0u; i < 4u; ++i) q[i] = u32(off + 4u * i);
}
uint byte16(uint q[4], uint i) { return (q[i >> 2] >> ((i & 3u) << 3)) & 0xFFu; }
int int8_of(uint b) { return bitfieldExtract(int(b), 0, 8); }

#if defined(TYPE_IQ4_NL) || defined(TYPE_IQ4_XS)
// The non-linear grid of IQ4_NL and IQ4_XS.
const float kIQ4Values[16] = float[16](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
                                       1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);
#endif

#if defined(TYPE_F32)
void dequant16(uint row, uint c, uint cols, out float v[16]) {
  for (uint i = 0u; i < 16u; ++i) {
    const uint e = 16u * c + i;
    v[i] = e < cols ? uintBitsToFloat(wq[(row >> 2) + e]) : 0.0;
  }
}
#elif defined(TYPE_F16) || defined(TYPE_BF16)
void dequant16(uint row, uint c, uint cols, out float v[16]) {
  for (uint i = 0u; i < 16u; ++i) {
    const uint e = 16u * c + i;
#if defined(TYPE_F16)
    v[i] = e < cols ? f16(row + 2u * e) : 0.0;
#else
    v[i] = e < cols ? uintBitsToFloat(u16(row + 2u * e) << 16) : 0.0;
#endif
  }
}
#elif defined(TYPE_Q4_0) || defined(TYPE_Q4_1) || defined(TYPE_IQ4_NL)
// 32-element blocks of nibbles: elements 0..15 in the low nibbles of qs, 16..31 in the high.
#if defined(TYPE_Q4_1)
const uint kBlockBytes = 20u, kQs = 4u;
#else
const uint kBlockBytes = 18u, kQs = 2u;
#endif
void dequant16(uint row, uint c, uint cols, out float v[16]) {
  const uint off = row + (c >> 1) * kBlockBytes, shift = (c & 1u) * 4u;
  const float d = f16(off);
  uint q[4];
  load16(off + kQs, q);
  for (uint i = 0u; i < 16u; ++i) {
    const uint n = (byte16(q, i) >> shift) & 15u;
#if defined(TYPE_Q4_0)
    v[i] = d * (float(n) - 8.0);
#elif defined(TYPE_Q4_1)
    v[i] = d * float(n) + f16(off + 2u);
#else
    v[i] = d * kIQ4Values[n];
#endif
  }
}
#elif defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
// As Q4_0/Q4_1, with the fifth bit of element j in bit j of the 32-bit qh.
#if defined(TYPE_Q5_1)
const uint kBlockBytes = 24u, kQh = 4u;
#else
const uint kBlockBytes = 22u, kQh = 2u;
#endif
void dequant16(uint row, uint c, uint cols, out float v[16]) {
  const uint off = row + (c >> 1) * kBlockBytes, half_ = c & 1u;
  const float d = f16(off);
  const uint qh = u32(off + kQh);
  uint q[4];
  load16(off + kQh + 4u, q);
  for (uint i = 0u; i < 16u; ++i) {
    const uint n = ((byte16(q, i) >> (4u * half_)) & 15u) | (((qh >> (16u * half_ + i)) & 1u) << 4);
#if defined(TYPE_Q5_0)
    v[i] = d * (float(n) - 16.0);
#else
    v[i] = d * float(n) + f16(off + 2u);
#endif
  }
}
#elif defined(TYPE_Q8_0)
void dequant16(uint row, uint c, uint cols, out float v[16]) {
  const uint off = row + (c >> 1) * 34u;
  const float d = f16(off);
  uint q[4];
  load16(off + 2u + 16u * (c & 1u), q);
  for (uint i = 0u; i < 16u; ++i) v[i] = float(int8_of(byte16(q, i))) * d;
}
#elif defined(TYPE_Q2_K) || defined(TYPE_Q3_K) || defined(TYPE_Q6_K)
// Super-blocks of 256 in 16 groups of 16 (chunk c is group c % 16 of super-block c / 16). In
// the 2-bit planes, element e = 128h + 32s + l is bits 2s..2s+1 of byte 32h + l.
void dequant16(uint row, uint c, uint cols, out float v[16]) {
  const uint g = c & 15u, h = g >> 3, s = (g >> 1) & 3u, l0 = (g & 1u) * 16u;
  uint q[4];
#if defined(TYPE_Q2_K)
  const uint off = row + (c >> 4) * 84u;
  const uint sc = u8(off + g);
  const float dl = f16(off + 80u) * float(sc & 15u), ml = f16(off + 82u) * float(sc >> 4);
  load16(off + 16u + 32u * h + l0, q);
  for (uint i = 0u; i < 16u; ++i) v[i] = dl * float((byte16(q, i) >> (2u * s)) & 3u) - ml;
#elif defined(TYPE_Q3_K)
  const uint off = row + (c >> 4) * 110u;
  // Six-bit signed scales: low four bits in byte g (g < 8, low nibble) or g − 8 (high nibble)
  // of scales, high two bits in byte 8 + g % 4 at bit 2·(g / 4).
  const uint low = g < 8u ? u8(off + 96u + g) & 15u : u8(off + 96u + g - 8u) >> 4;
  const uint high = (u8(off + 104u + (g & 3u)) >> (2u * (g >> 2))) & 3u;
  const float dl = f16(off + 108u) * float(int(low | (high << 4)) - 32);
  uint m[4];
  load16(off + 32u + 32u * h + l0, q);
  load16(off + l0, m);  // hmask: a clear bit (e / 32) subtracts 4
  for (uint i = 0u; i < 16u; ++i) {
    const int lq = int((byte16(q, i) >> (2u * s)) & 3u);
    const bool hb = ((byte16(m, i) >> (g >> 1)) & 1u) != 0u;
    v[i] = dl * float(lq - (hb ? 0 : 4));
  }
#else  // Q6_K: low nibble of ql[64h + l + 32(k & 1)] >> 4(k / 2), high bits 2k of qh[32h + l]
  const uint off = row + (c >> 4) * 210u, k = s;
  const float dl = f16(off + 208u) * float(int8_of(u8(off + 192u + g)));
  uint hq[4];
  load16(off + 64u * h + l0 + 32u * (k & 1u), q);
  load16(off + 128u + 32u * h + l0, hq);
  for (uint i = 0u; i < 16u; ++i) {
    const uint n = ((byte16(q, i) >> (4u * (k >> 1))) & 15u) | (((byte16(hq, i) >> (2u * k)) & 3u) << 4);
    v[i] = dl * float(int(n) - 32);
  }
#endif
}
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// Super-blocks of 256 in 8 groups of 32 with six-bit scales and mins; group j in nibble j & 1
// of qs[32(j / 2) + l]; Q5_K's fifth bit is bit j of qh[l].
void dequant16(uint row, uint c, uint cols, out float v[16]) {
#if defined(TYPE_Q4_K)
  const uint off = row + (c >> 4) * 144u, qs = 16u;
#else
  const uint off = row + (c >> 4) * 176u, qs = 48u;
#endif
  const uint j = (c & 15u) >> 1, l0 = (c & 1u) * 16u;
  uint sc, mn;
  if (j < 4u) {
    sc = u8(off + 4u + j) & 63u;
    mn = u8(off + 8u + j) & 63u;
  } else {
    sc = (u8(off + 8u + j) & 15u) | ((u8(off + j) >> 6) << 4);
    mn = (u8(off + 8u + j) >> 4) | ((u8(off + 4u + j) >> 6) << 4);
  }
  const float dl = f16(off) * float(sc), ml = f16(off + 2u) * float(mn);
  uint q[4];
  load16(off + qs + 32u * (j >> 1) + l0, q);
#if defined(TYPE_Q5_K)
  uint hq[4];
  load16(off + 16u + l0, hq);
#endif
  for (uint i = 0u; i < 16u; ++i) {
    uint n = (byte16(q, i) >> (4u * (j & 1u))) & 15u;
#if defined(TYPE_Q5_K)
    n |= ((byte16(hq, i) >> j) & 1u) << 4;
#endif
    v[i] = dl * float(n) - ml;
  }
}
#elif defined(TYPE_IQ4_XS)
// Super-blocks of 256 in 8 groups of 32: six-bit scale = scales_l nibble | scales_h bits << 4,
// each group's nibbles ordered as in IQ4_NL.
void dequant16(uint row, uint c, uint cols, out float v[16]) {
  const uint off = row + (c >> 4) * 136u, g = (c & 15u) >> 1, half_ = c & 1u;
  const uint low = (u8(off + 4u + (g >> 1)) >> (4u * (g & 1u))) & 15u;
  const uint high = (u16(off + 2u) >> (2u * g)) & 3u;
  const float dl = f16(off) * float(int(low | (high << 4)) - 32);
  uint q[4];
  load16(off + 8u + 16u * g, q);
  for (uint i = 0u; i < 16u; ++i) v[i] = dl * kIQ4Values[(byte16(q, i) >> (4u * half_)) & 15u];
}
#else
#error "define the block format: TYPE_F32, TYPE_Q4_0, ..."
#endif
