// One dequantisation function per GGUF block format, chosen by a TYPE_* define (the weight
// program is built once per format), as kernels/vulkan/shaders/dequant.glsl: layouts and element
// order of kernels/cpu/block_formats.h and the scalar reference. OpenCL C 1.2 only: F16 through
// vload_half, no half arithmetic.
//
//   void dequant16(w, row, c, cols, v)
// writes elements 16c .. 16c+15 of the row starting at byte `row` of w into v[0..15] (elements
// at or beyond `cols` are 0; only the float formats have rows that are not whole chunks).

uint u8(__global const uchar* w, uint off) { return w[off]; }
uint u16(__global const uchar* w, uint off) { return w[off] | ((uint)w[off + 1] << 8); }
uint u32(__global const uchar* w, uint off) {
  return w[off] | ((uint)w[off + 1] << 8) | ((uint)w[off + 2] << 16) | ((uint)w[off + 3] << 24);
}
float f16(__global const uchar* w, uint off) {  // off even
  return vload_half(0, (__global const half*)(w + off));
}

#if defined(TYPE_IQ4_NL) || defined(TYPE_IQ4_XS)
__constant float kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};
#endif

#if defined(TYPE_F32)
void dequant16(__global const uchar* w, uint row, uint c, uint cols, float* v) {
  for (uint i = 0; i < 16; ++i) {
    const uint e = 16 * c + i;
    v[i] = e < cols ? ((__global const float*)(w + row))[e] : 0.0f;
  }
}
#elif defined(TYPE_F16) || defined(TYPE_BF16)
void dequant16(__global const uchar* w, uint row, uint c, uint cols, float* v) {
  for (uint i = 0; i < 16; ++i) {
    const uint e = 16 * c + i;
#if defined(TYPE_F16)
    v[i] = e < cols ? f16(w, row + 2 * e) : 0.0f;
#else
    v[i] = e < cols ? as_float(u16(w, row + 2 * e) << 16) : 0.0f;
#endif
  }
}
#elif defined(TYPE_Q4_0) || defined(TYPE_Q4_1) || defined(TYPE_IQ4_NL)
// 32-element blocks of nibbles: elements 0..15 in the low nibbles of qs, 16..31 in the high.
#if defined(TYPE_Q4_1)
#define BLOCK_BYTES 20
#define QS 4
#else
#define BLOCK_BYTES 18
#define QS 2
#endif
void dequant16(__global const uchar* w, uint row, uint c, uint cols, float* v) {
  const uint off = row + (c >> 1) * BLOCK_BYTES, shift = (c & 1) * 4;
  const float d = f16(w, off);
  for (uint i = 0; i < 16; ++i) {
    const uint n = (w[off + QS + i] >> shift) & 15;
#if defined(TYPE_Q4_0)
    v[i] = d * ((float)n - 8.0f);
#elif defined(TYPE_Q4_1)
    v[i] = d * (float)n + f16(w, off + 2);
#else
    v[i] = d * kIQ4Values[n];
#endif
  }
}
#elif defined(TYPE_Q5_0) || defined(TYPE_Q5_1)
// As Q4_0/Q4_1, with the fifth bit of element j in bit j of the 32-bit qh.
#if defined(TYPE_Q5_1)
#define BLOCK_BYTES 24
#define QH 4
#else
#define BLOCK_BYTES 22
#define QH 2
#endif
void dequant16(__global const uchar* w, uint row, uint c, uint cols, float* v) {
  const uint off = row + (c >> 1) * BLOCK_BYTES, half_ = c & 1;
  const float d = f16(w, off);
  const uint qh = u32(w, off + QH);
  for (uint i = 0; i < 16; ++i) {
    const uint n = ((w[off + QH + 4 + i] >> (4 * half_)) & 15) | (((qh >> (16 * half_ + i)) & 1) << 4);
#if defined(TYPE_Q5_0)
    v[i] = d * ((float)n - 16.0f);
#else
    v[i] = d * (float)n + f16(w, off + 2);
#endif
  }
}
#elif defined(TYPE_Q8_0)
void dequant16(__global const uchar* w, uint row, uint c, uint cols, float* v) {
  const uint off = row + (c >> 1) * 34;
  const float d = f16(w, off);
  for (uint i = 0; i < 16; ++i) v[i] = (float)(char)w[off + 2 + 16 * (c & 1) + i] * d;
}
#elif defined(TYPE_Q2_K) || defined(TYPE_Q3_K) || defined(TYPE_Q6_K)
// Super-blocks of 256 in 16 groups of 16 (chunk c is group c % 16 of super-block c / 16). In
// the 2-bit planes, element e = 128h + 32s + l is bits 2s..2s+1 of byte 32h + l.
void dequant16(__global const uchar* w, uint row, uint c, uint cols, float* v) {
  const uint g = c & 15, h = g >> 3, s = (g >> 1) & 3, l0 = (g & 1) * 16;
#if defined(TYPE_Q2_K)
  const uint off = row + (c >> 4) * 84;
  const uint sc = w[off + g];
  const float dl = f16(w, off + 80) * (float)(sc & 15), ml = f16(w, off + 82) * (float)(sc >> 4);
  for (uint i = 0; i < 16; ++i) v[i] = dl * (float)((w[off + 16 + 32 * h + l0 + i] >> (2 * s)) & 3) - ml;
#elif defined(TYPE_Q3_K)
  const uint off = row + (c >> 4) * 110;
  const uint low = g < 8 ? w[off + 96 + g] & 15 : w[off + 96 + g - 8] >> 4;
  const uint high = (w[off + 104 + (g & 3)] >> (2 * (g >> 2))) & 3;
  const float dl = f16(w, off + 108) * (float)((int)(low | (high << 4)) - 32);
  for (uint i = 0; i < 16; ++i) {
    const int lq = (w[off + 32 + 32 * h + l0 + i] >> (2 * s)) & 3;
    const bool hb = ((w[off + l0 + i] >> (g >> 1)) & 1) != 0;  // hmask: clear subtracts 4
    v[i] = dl * (float)(lq - (hb ? 0 : 4));
  }
#else  // Q6_K
  const uint off = row + (c >> 4) * 210, k = s;
  const float dl = f16(w, off + 208) * (float)(char)w[off + 192 + g];
  for (uint i = 0; i < 16; ++i) {
    const uint n = ((w[off + 64 * h + l0 + 32 * (k & 1) + i] >> (4 * (k >> 1))) & 15) |
                   (((w[off + 128 + 32 * h + l0 + i] >> (2 * k)) & 3) << 4);
    v[i] = dl * (float)((int)n - 32);
  }
#endif
}
#elif defined(TYPE_Q4_K) || defined(TYPE_Q5_K)
// Super-blocks of 256 in 8 groups of 32 with six-bit scales and mins; group j in nibble j & 1
// of qs[32(j / 2) + l]; Q5_K's fifth bit is bit j of qh[l].
void dequant16(__global const uchar* w, uint row, uint c, uint cols, float* v) {
#if defined(TYPE_Q4_K)
  const uint off = row + (c >> 4) * 144, qs = 16;
#else
  const uint off = row + (c >> 4) * 176, qs = 48;
#endif
  const uint j = (c & 15) >> 1, l0 = (c & 1) * 16;
  uint sc, mn;
  if (j < 4) {
    sc = w[off + 4 + j] & 63;
    mn = w[off + 8 + j] & 63;
  } else {
    sc = (w[off + 8 + j] & 15) | ((w[off + j] >> 6) << 4);
    mn = (w[off + 8 + j] >> 4) | ((w[off + 4 + j] >> 6) << 4);
  }
  const float dl = f16(w, off) * (float)sc, ml = f16(w, off + 2) * (float)mn;
  for (uint i = 0; i < 16; ++i) {
    uint n = (w[off + qs + 32 * (j >> 1) + l0 + i] >> (4 * (j & 1))) & 15;
#if defined(TYPE_Q5_K)
    n |= ((w[off + 16 + l0 + i] >> j) & 1) << 4;
#endif
    v[i] = dl * (float)n - ml;
  }
}
#elif defined(TYPE_IQ4_XS)
void dequant16(__global const uchar* w, uint row, uint c, uint cols, float* v) {
  const uint off = row + (c >> 4) * 136, g = (c & 15) >> 1, half_ = c & 1;
  const uint low = (w[off + 4 + (g >> 1)] >> (4 * (g & 1))) & 15;
  const uint high = (u16(w, off + 2) >> (2 * g)) & 3;
  const float dl = f16(w, off) * (float)((int)(low | (high << 4)) - 32);
  for (uint i = 0; i < 16; ++i) v[i] = dl * kIQ4Values[(w[off + 8 + 16 * g + i] >> (4 * half_)) & 15];
}
#else
#error "define the block format: TYPE_F32, TYPE_Q4_0, ..."
#endif
