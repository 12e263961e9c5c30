// Scalar dequantisation of every supported block format (see block_formats.h for the layouts).
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/reference.h"

namespace ember::cpu::reference {
namespace {

using gguf::TensorType;

// Element j of a 32-element block whose nibbles are stored as in Q4_0: 0..15 low, 16..31 high.
inline int nibble(const uint8_t* qs, int j) {
  return j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4;
}
inline int fifth_bit(const uint8_t* qh, int j) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  return (bits >> j) & 1;
}

void dq_f32(const void* src, float* y, int64_t n) {
  std::memcpy(y, src, n * sizeof(float));
}
void dq_f16(const void* src, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(h[i]);
}
void dq_bf16(const void* src, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(h[i]);
}

void dq_q4_0(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(nibble(b[i].qs, j) - 8);
  }
}
void dq_q4_1(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(nibble(b[i].qs, j)) + m;
  }
}
void dq_q5_0(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ5_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) {
      int q = nibble(b[i].qs, j) | (fifth_bit(b[i].qh, j) << 4);
      y[j] = d * static_cast<float>(q - 16);
    }
  }
}
void dq_q5_1(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ5_1*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    float d = fp16_to_f32(b[i].d), m = fp16_to_f32(b[i].m);
    for (int j = 0; j < kQK; ++j) {
      int q = nibble(b[i].qs, j) | (fifth_bit(b[i].qh, j) << 4);
      y[j] = d * static_cast<float>(q) + m;
    }
  }
}
void dq_q8_0(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}
void dq_q8_1(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ8_1*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

// K family. Inside a super-block, element e of a 2-bit plane is bits 2s..2s+1 of byte
// qs[32·h + l] where e = 128·h + 32·s + l (h half, s shift, l lane).
void dq_q2_k(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ2_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i, y += kQKK) {
    float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    for (int e = 0; e < kQKK; ++e) {
      int h = e / 128, s = (e / 32) % 4, l = e % 32, g = e / 16;
      int q = (b[i].qs[32 * h + l] >> (2 * s)) & 3;
      float dl = d * static_cast<float>(b[i].scales[g] & 0x0f);
      float ml = dmin * static_cast<float>(b[i].scales[g] >> 4);
      y[e] = dl * static_cast<float>(q) - ml;
    }
  }
}
void dq_q3_k(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ3_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i, y += kQKK) {
    float d = fp16_to_f32(b[i].d);
    int8_t scales[16];
    q3k_scales(b[i].scales, scales);
    for (int e = 0; e < kQKK; ++e) {
      int h = e / 128, s = (e / 32) % 4, l = e % 32;
      int low = (b[i].qs[32 * h + l] >> (2 * s)) & 3;
      int high = (b[i].hmask[l] >> (e / 32)) & 1;  // a clear bit subtracts 4
      float dl = d * static_cast<float>(scales[e / 16]);
      y[e] = dl * static_cast<float>(low - (high ? 0 : 4));
    }
  }
}
// Q4_K/Q5_K: group g = e / 32 lives in nibble (g & 1) of qs[32·(g / 2) + l]; Q5_K adds bit g
// of qh[l] as the fifth bit.
template <class Block, bool kFifthBit>
void dq_q45_k(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i, y += kQKK) {
    float d = fp16_to_f32(b[i].d), dmin = fp16_to_f32(b[i].dmin);
    for (int g = 0; g < 8; ++g) {
      uint8_t sc, m;
      kquant_scale_min(b[i].scales, g, &sc, &m);
      float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        int q = (b[i].qs[32 * (g / 2) + l] >> (4 * (g & 1))) & 0x0f;
        if constexpr (kFifthBit) q |= ((b[i].qh[l] >> g) & 1) << 4;
        y[32 * g + l] = dl * static_cast<float>(q) - ml;
      }
    }
  }
}
// Q6_K: e = 128·h + 32·k + l (k 0..3): low nibble of ql[64·h + l + 32·(k & 1)] shifted by
// 4·(k / 2), high bits 2k..2k+1 of qh[32·h + l].
void dq_q6_k(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ6_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i, y += kQKK) {
    float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQKK; ++e) {
      int h = e / 128, k = (e / 32) % 4, l = e % 32;
      int low = (b[i].ql[64 * h + l + 32 * (k & 1)] >> (4 * (k / 2))) & 0x0f;
      int high = (b[i].qh[32 * h + l] >> (2 * k)) & 3;
      float dl = d * static_cast<float>(b[i].scales[e / 16]);
      y[e] = dl * static_cast<float>((low | (high << 4)) - 32);
    }
  }
}
void dq_q8_k(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockQ8_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i, y += kQKK)
    for (int j = 0; j < kQKK; ++j) y[j] = b[i].d * static_cast<float>(b[i].qs[j]);
}
void dq_iq4_nl(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockIQ4_NL*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    float d = fp16_to_f32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(kIQ4Values[nibble(b[i].qs, j)]);
  }
}
void dq_iq4_xs(const void* src, float* y, int64_t n) {
  const auto* b = static_cast<const BlockIQ4_XS*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i, y += kQKK) {
    float d = fp16_to_f32(b[i].d);
    for (int g = 0; g < 8; ++g) {
      int low = (b[i].scales_l[g / 2] >> (4 * (g % 2))) & 0x0f;
      int high = (b[i].scales_h >> (2 * g)) & 3;
      float dl = d * static_cast<float>((low | (high << 4)) - 32);
      for (int j = 0; j < 32; ++j)
        y[32 * g + j] = dl * static_cast<float>(kIQ4Values[nibble(b[i].qs + 16 * g, j)]);
    }
  }
}

using DequantizeFn = void (*)(const void*, float*, int64_t);

DequantizeFn dequantizer(TensorType type) {
  switch (type) {
    case TensorType::F32:
      return dq_f32;
    case TensorType::F16:
      return dq_f16;
    case TensorType::BF16:
      return dq_bf16;
    case TensorType::Q4_0:
      return dq_q4_0;
    case TensorType::Q4_1:
      return dq_q4_1;
    case TensorType::Q5_0:
      return dq_q5_0;
    case TensorType::Q5_1:
      return dq_q5_1;
    case TensorType::Q8_0:
      return dq_q8_0;
    case TensorType::Q8_1:
      return dq_q8_1;
    case TensorType::Q2_K:
      return dq_q2_k;
    case TensorType::Q3_K:
      return dq_q3_k;
    case TensorType::Q4_K:
      return dq_q45_k<BlockQ4_K, false>;
    case TensorType::Q5_K:
      return dq_q45_k<BlockQ5_K, true>;
    case TensorType::Q6_K:
      return dq_q6_k;
    case TensorType::Q8_K:
      return dq_q8_k;
    case TensorType::IQ4_NL:
      return dq_iq4_nl;
    case TensorType::IQ4_XS:
      return dq_iq4_xs;
    default:
      return nullptr;
  }
}

}  // namespace

bool can_dequantize(TensorType type) {
  return dequantizer(type) != nullptr;
}

void dequantize_row(TensorType type, const void* src, float* dst, int64_t n) {
  DequantizeFn f = dequantizer(type);
  if (f == nullptr)
    throw std::invalid_argument("no dequantisation for tensor type " +
                                std::string(gguf::type_name(type)));
  f(src, dst, n);
}

double dot(TensorType weight_type, const void* weights, TensorType act_type,
           const void* activations, int64_t n) {
  std::vector<float> w(n), a(n);
  dequantize_row(weight_type, weights, w.data(), n);
  dequantize_row(act_type, activations, a.data(), n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(w[i]) * a[i];
  return sum;
}

}  // namespace ember::cpu::reference
