// Scalar quantisation from float32 into every format ember writes. The 32-element formats follow
// ggml's reference rounding exactly; the K and IQ4 formats search each group's scale (and min)
// over a few candidates by least squares, then quantise the group scales into the super-block.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/reference.h"

namespace ember::cpu::reference {
namespace {

using gguf::TensorType;

inline int nearest_int(float x) {
  return static_cast<int>(std::lround(x));
}

// Element j (0..31) of a 32-element block goes to nibble j / 16 of byte j % 16.
inline void put_nibble(uint8_t* qs, int j, int q) {
  if (j < 16)
    qs[j] = static_cast<uint8_t>((qs[j] & 0xf0) | q);
  else
    qs[j - 16] = static_cast<uint8_t>((qs[j - 16] & 0x0f) | (q << 4));
}

// The signed value of largest magnitude in x[0..n).
float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  return max;
}

void q_f32(const float* x, void* dst, int64_t n) {
  std::memcpy(dst, x, n * sizeof(float));
}
void q_f16(const float* x, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_fp16(x[i]);
}
void q_bf16(const float* x, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(x[i]);
}

// Q4_0 / Q5_0: the extreme value maps to the most negative level, −8 or −16.
template <class Block, int kLevels>
void q_symmetric_nibbles(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<Block*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float d = signed_absmax(x, kQK) / -(kLevels / 2);
    float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    uint32_t qh = 0;
    for (int j = 0; j < kQK; ++j) {
      int q = std::min(kLevels - 1, static_cast<int>(x[j] * id + (kLevels / 2 + 0.5f)));
      put_nibble(b[i].qs, j, q & 0x0f);
      qh |= static_cast<uint32_t>(q >> 4) << j;
    }
    if constexpr (kLevels == 32) std::memcpy(b[i].qh, &qh, 4);
  }
}

// Q4_1 / Q5_1: levels spread from the block's min to its max.
template <class Block, int kLevels>
void q_affine_nibbles(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<Block*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float min = *std::min_element(x, x + kQK), max = *std::max_element(x, x + kQK);
    float d = (max - min) / (kLevels - 1);
    float id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    b[i].m = f32_to_fp16(min);
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    uint32_t qh = 0;
    for (int j = 0; j < kQK; ++j) {
      int q = std::min(kLevels - 1, static_cast<int>((x[j] - min) * id + 0.5f));
      put_nibble(b[i].qs, j, q & 0x0f);
      qh |= static_cast<uint32_t>(q >> 4) << j;
    }
    if constexpr (kLevels == 32) std::memcpy(b[i].qh, &qh, 4);
  }
}

void q_q8_0(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(std::lround(x[j] * id));
  }
}
void q_q8_1(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      b[i].qs[j] = static_cast<int8_t>(std::lround(x[j] * id));
      sum += b[i].qs[j];
    }
    b[i].d = f32_to_fp16(d);
    b[i].s = f32_to_fp16(static_cast<float>(sum) * d);
  }
}
void q_q8_k(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float max = signed_absmax(x, kQKK);
    std::memset(&b[i], 0, sizeof b[i]);
    if (max == 0) continue;
    float iscale = -127.0f / max;
    for (int j = 0; j < kQKK; ++j) {
      b[i].qs[j] = static_cast<int8_t>(std::clamp(nearest_int(iscale * x[j]), -127, 127));
      b[i].bsums[j / 16] = static_cast<int16_t>(b[i].bsums[j / 16] + b[i].qs[j]);
    }
    b[i].d = 1.0f / iscale;
  }
}

// ---- group quantisers used by the K family ----

// Affine group x ≈ scale·q − offset with q in [0, levels−1], offset ≥ 0 (the group minimum,
// clipped at 0). Tries several scales, refits scale and offset by least squares for each, and
// keeps the lowest squared error.
void fit_affine(const float* x, int n, int levels, float* scale, float* offset) {
  float min = std::min(0.0f, *std::min_element(x, x + n));
  float max = *std::max_element(x, x + n);
  *scale = 0;
  *offset = -min;
  if (max <= min) return;
  double best_error = INFINITY;
  for (int step = -4; step <= 8; ++step) {
    float iscale = (levels - 1 + 0.1f * step) / (max - min);
    double sq = 0, sx = 0, sqq = 0, sqx = 0;
    int q[32];
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(nearest_int(iscale * (x[i] - min)), 0, levels - 1);
      sq += q[i], sx += x[i], sqq += double(q[i]) * q[i], sqx += double(q[i]) * x[i];
    }
    double det = n * sqq - sq * sq;
    double s = (max - min) / (levels - 1), o = min;  // fall back to the plain fit
    if (det > 0) s = (n * sqx - sq * sx) / det, o = (sx - s * sq) / n;
    if (o > 0) o = 0, s = sqq > 0 ? sqx / sqq : 0;  // the offset may only lower values
    double err = 0;
    for (int i = 0; i < n; ++i) {
      double e = s * q[i] + o - x[i];
      err += e * e;
    }
    if (err < best_error)
      best_error = err, *scale = static_cast<float>(s), *offset = static_cast<float>(-o);
  }
}

// Symmetric group x ≈ scale·q, q in [−half, half−1]; the extreme value maps to −half, then a few
// nearby scales are tried with a least-squares refit.
float fit_symmetric(const float* x, int n, int half) {
  float max = signed_absmax(x, n);
  if (max == 0) return 0;
  float best_scale = max / -half;
  double best_error = INFINITY;
  for (int step = -6; step <= 6; ++step) {
    float iscale = -(half + 0.1f * step) / max;
    double sqq = 0, sqx = 0;
    int q[32];
    for (int i = 0; i < n; ++i) {
      q[i] = std::clamp(nearest_int(iscale * x[i]), -half, half - 1);
      sqq += double(q[i]) * q[i], sqx += double(q[i]) * x[i];
    }
    if (sqq == 0) continue;
    double s = sqx / sqq, err = 0;
    for (int i = 0; i < n; ++i) {
      double e = s * q[i] - x[i];
      err += e * e;
    }
    if (err < best_error) best_error = err, best_scale = static_cast<float>(s);
  }
  return best_scale;
}

// Quantises non-negative group values v[0..n) to integers 0..max_code with one float step:
// returns the step (v ≈ step·code).
float quantize_group_scales(const float* v, int n, int max_code, uint8_t* codes) {
  float max = *std::max_element(v, v + n);
  float step = max > 0 ? max / max_code : 0;
  for (int i = 0; i < n; ++i)
    codes[i] =
        static_cast<uint8_t>(step > 0 ? std::clamp(nearest_int(v[i] / step), 0, max_code) : 0);
  return step;
}

// Q2_K (levels 4, 4-bit scales) and Q4_K/Q5_K (levels 16/32, 6-bit scales): affine groups.
template <int kGroup, int kLevels, int kMaxCode>
void fit_kquant_groups(const float* x, float d_out[2], uint8_t sc[], uint8_t mn[], uint8_t q[]) {
  constexpr int kGroups = kQKK / kGroup;
  float scales[kGroups], offsets[kGroups];
  for (int g = 0; g < kGroups; ++g)
    fit_affine(x + g * kGroup, kGroup, kLevels, &scales[g], &offsets[g]);
  float d = quantize_group_scales(scales, kGroups, kMaxCode, sc);
  float dmin = quantize_group_scales(offsets, kGroups, kMaxCode, mn);
  // Round both to fp16 first: the codes must be chosen against the scales the block will hold.
  d = fp16_to_f32(f32_to_fp16(d));
  dmin = fp16_to_f32(f32_to_fp16(dmin));
  d_out[0] = d, d_out[1] = dmin;
  for (int g = 0; g < kGroups; ++g) {
    float dl = d * sc[g], ml = dmin * mn[g];
    for (int l = 0; l < kGroup; ++l) {
      int e = g * kGroup + l;
      q[e] = static_cast<uint8_t>(dl > 0 ? std::clamp(nearest_int((x[e] + ml) / dl), 0, kLevels - 1)
                                         : 0);
    }
  }
}

void q_q2_k(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ2_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float d[2];
    uint8_t sc[16], mn[16], q[kQKK];
    fit_kquant_groups<16, 4, 15>(x, d, sc, mn, q);
    b[i].d = f32_to_fp16(d[0]);
    b[i].dmin = f32_to_fp16(d[1]);
    for (int g = 0; g < 16; ++g) b[i].scales[g] = static_cast<uint8_t>(sc[g] | (mn[g] << 4));
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    for (int e = 0; e < kQKK; ++e) {
      int h = e / 128, s = (e / 32) % 4, l = e % 32;
      b[i].qs[32 * h + l] |= static_cast<uint8_t>(q[e] << (2 * s));
    }
  }
}

// Packs eight six-bit scales and mins into the 12 bytes of a Q4_K/Q5_K block.
void pack_kquant_scales(const uint8_t sc[8], const uint8_t mn[8], uint8_t out[12]) {
  for (int j = 0; j < 4; ++j) {
    out[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    out[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4));
  }
}

// Q4_K (16 levels) and Q5_K (32 levels, the fifth bit in qh).
template <class Block, bool kFifthBit>
void q_q45_k(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<Block*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float d[2];
    uint8_t sc[8], mn[8], q[kQKK];
    fit_kquant_groups<32, kFifthBit ? 32 : 16, 63>(x, d, sc, mn, q);
    b[i].d = f32_to_fp16(d[0]);
    b[i].dmin = f32_to_fp16(d[1]);
    pack_kquant_scales(sc, mn, b[i].scales);
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    if constexpr (kFifthBit) std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int e = 0; e < kQKK; ++e) {
      int g = e / 32, l = e % 32;
      b[i].qs[32 * (g / 2) + l] |= static_cast<uint8_t>((q[e] & 0x0f) << (4 * (g & 1)));
      if constexpr (kFifthBit) b[i].qh[l] |= static_cast<uint8_t>((q[e] >> 4) << g);
    }
  }
}

// Symmetric K groups: group scales are signed; the super-block scale maps the largest
// magnitude to −max_code (the codes then span [−max_code, max_code − 1] or more).
template <int kGroup, int kHalf>
void fit_symmetric_groups(const float* x, int max_code, float* d_out, int8_t codes[], int8_t q[]) {
  constexpr int kGroups = kQKK / kGroup;
  float scales[kGroups];
  for (int g = 0; g < kGroups; ++g) scales[g] = fit_symmetric(x + g * kGroup, kGroup, kHalf);
  float max = signed_absmax(scales, kGroups);
  float d = fp16_to_f32(f32_to_fp16(max / -max_code));
  *d_out = d;
  for (int g = 0; g < kGroups; ++g) {
    codes[g] = static_cast<int8_t>(
        d != 0 ? std::clamp(nearest_int(scales[g] / d), -max_code, max_code - 1) : 0);
    float dl = d * codes[g];
    for (int l = 0; l < kGroup; ++l) {
      int e = g * kGroup + l;
      q[e] =
          static_cast<int8_t>(dl != 0 ? std::clamp(nearest_int(x[e] / dl), -kHalf, kHalf - 1) : 0);
    }
  }
}

void q_q3_k(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ3_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float d;
    int8_t codes[16], q[kQKK];
    fit_symmetric_groups<16, 4>(x, 32, &d, codes, q);
    b[i].d = f32_to_fp16(d);
    std::memset(b[i].scales, 0, sizeof b[i].scales);
    for (int g = 0; g < 16; ++g) {
      int s = codes[g] + 32;  // 0..63
      if (g < 8)
        b[i].scales[g] |= static_cast<uint8_t>(s & 0x0f);
      else
        b[i].scales[g - 8] |= static_cast<uint8_t>((s & 0x0f) << 4);
      b[i].scales[8 + g % 4] |= static_cast<uint8_t>((s >> 4) << (2 * (g / 4)));
    }
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    std::memset(b[i].hmask, 0, sizeof b[i].hmask);
    for (int e = 0; e < kQKK; ++e) {
      int v = q[e] + 4;  // 0..7: two low bits in qs, the third (set = no −4) in hmask
      int h = e / 128, s = (e / 32) % 4, l = e % 32;
      b[i].qs[32 * h + l] |= static_cast<uint8_t>((v & 3) << (2 * s));
      b[i].hmask[l] |= static_cast<uint8_t>((v >> 2) << (e / 32));
    }
  }
}

void q_q6_k(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float d;
    int8_t codes[16], q[kQKK];
    fit_symmetric_groups<16, 32>(x, 128, &d, codes, q);
    b[i].d = f32_to_fp16(d);
    std::memcpy(b[i].scales, codes, 16);
    std::memset(b[i].ql, 0, sizeof b[i].ql);
    std::memset(b[i].qh, 0, sizeof b[i].qh);
    for (int e = 0; e < kQKK; ++e) {
      int v = q[e] + 32;  // 0..63
      int h = e / 128, k = (e / 32) % 4, l = e % 32;
      b[i].ql[64 * h + l + 32 * (k & 1)] |= static_cast<uint8_t>((v & 0x0f) << (4 * (k / 2)));
      b[i].qh[32 * h + l] |= static_cast<uint8_t>((v >> 4) << (2 * k));
    }
  }
}

// IQ4: nearest grid value to x / d, for a given d.
int nearest_iq4(float v) {
  int best = 0;
  for (int k = 1; k < 16; ++k)
    if (std::fabs(kIQ4Values[k] - v) < std::fabs(kIQ4Values[best] - v)) best = k;
  return best;
}

// Best scale for a group on the IQ4 grid: the extreme value maps to −127 or +113, then nearby
// scales are tried with a least-squares refit.
float fit_iq4(const float* x, int n) {
  float max = signed_absmax(x, n);
  if (max == 0) return 0;
  float best_scale = max / -127.0f;
  double best_error = INFINITY;
  for (int step = -10; step <= 10; ++step) {
    float d = max / (-127.0f + step);
    double sqq = 0, sqx = 0;
    int q[32];
    for (int i = 0; i < n; ++i) {
      q[i] = kIQ4Values[nearest_iq4(x[i] / d)];
      sqq += double(q[i]) * q[i], sqx += double(q[i]) * x[i];
    }
    if (sqq == 0) continue;
    double s = sqx / sqq, err = 0;
    for (int i = 0; i < n; ++i) err += (s * q[i] - x[i]) * (s * q[i] - x[i]);
    if (err < best_error) best_error = err, best_scale = static_cast<float>(s);
  }
  return best_scale;
}

void q_iq4_nl(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockIQ4_NL*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float d = fp16_to_f32(f32_to_fp16(fit_iq4(x, kQK)));
    b[i].d = f32_to_fp16(d);
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    for (int j = 0; j < kQK; ++j) put_nibble(b[i].qs, j, d != 0 ? nearest_iq4(x[j] / d) : 8);
  }
}

void q_iq4_xs(const float* x, void* dst, int64_t n) {
  auto* b = static_cast<BlockIQ4_XS*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float scales[8];
    for (int g = 0; g < 8; ++g) scales[g] = fit_iq4(x + 32 * g, 32);
    float d = fp16_to_f32(f32_to_fp16(signed_absmax(scales, 8) / -32.0f));
    b[i].d = f32_to_fp16(d);
    b[i].scales_h = 0;
    std::memset(b[i].scales_l, 0, sizeof b[i].scales_l);
    std::memset(b[i].qs, 0, sizeof b[i].qs);
    for (int g = 0; g < 8; ++g) {
      int code = d != 0 ? std::clamp(nearest_int(scales[g] / d), -32, 31) : 0;
      int s = code + 32;
      b[i].scales_l[g / 2] |= static_cast<uint8_t>((s & 0x0f) << (4 * (g % 2)));
      b[i].scales_h |= static_cast<uint16_t>((s >> 4) << (2 * g));
      float dl = d * code;
      for (int j = 0; j < 32; ++j)
        put_nibble(b[i].qs + 16 * g, j, dl != 0 ? nearest_iq4(x[32 * g + j] / dl) : 8);
    }
  }
}

using QuantizeFn = void (*)(const float*, void*, int64_t);

QuantizeFn quantizer(TensorType type) {
  switch (type) {
    case TensorType::F32:
      return q_f32;
    case TensorType::F16:
      return q_f16;
    case TensorType::BF16:
      return q_bf16;
    case TensorType::Q4_0:
      return q_symmetric_nibbles<BlockQ4_0, 16>;
    case TensorType::Q4_1:
      return q_affine_nibbles<BlockQ4_1, 16>;
    case TensorType::Q5_0:
      return q_symmetric_nibbles<BlockQ5_0, 32>;
    case TensorType::Q5_1:
      return q_affine_nibbles<BlockQ5_1, 32>;
    case TensorType::Q8_0:
      return q_q8_0;
    case TensorType::Q8_1:
      return q_q8_1;
    case TensorType::Q2_K:
      return q_q2_k;
    case TensorType::Q3_K:
      return q_q3_k;
    case TensorType::Q4_K:
      return q_q45_k<BlockQ4_K, false>;
    case TensorType::Q5_K:
      return q_q45_k<BlockQ5_K, true>;
    case TensorType::Q6_K:
      return q_q6_k;
    case TensorType::Q8_K:
      return q_q8_k;
    case TensorType::IQ4_NL:
      return q_iq4_nl;
    case TensorType::IQ4_XS:
      return q_iq4_xs;
    default:
      return nullptr;
  }
}

}  // namespace

bool can_quantize(TensorType type) {
  return quantizer(type) != nullptr;
}

void quantize_row(TensorType type, const float* src, void* dst, int64_t n) {
  QuantizeFn f = quantizer(type);
  if (f == nullptr)
    throw std::invalid_argument("no quantisation into tensor type " +
                                std::string(gguf::type_name(type)));
  f(src, dst, n);
}

}  // namespace ember::cpu::reference
