#include "kernels/cpu/kernels.h"

#include <cmath>

#include <algorithm>
#include <array>
#include <vector>

#include "kernels/cpu/fp16.h"
#include "kernels/cpu/reference.h"

namespace ember::cpu {

#if defined(__x86_64__)
void avx2_kernels(gguf::TensorType type, VecDotFn* vec_dot, DotTileFn* dot_tile);  // dot_avx2.cpp
void avx512vnni_kernels(gguf::TensorType type, VecDotFn* vec_dot,
                        DotTileFn* dot_tile);                             // dot_avx512vnni.cpp
const PackedGemm* avx512vnni_gemm(gguf::TensorType type);                 // dot_avx512vnni.cpp
const InterleavedKernels* avx512vnni_interleaved(gguf::TensorType type);  // interleaved_avx512.cpp
void quantize_q8_0_avx512(const float* x, void* y, int64_t n);            // dot_avx512vnni.cpp
void quantize_q8_k_avx512(const float* x, void* y, int64_t n);            // dot_avx512vnni.cpp
const VectorOps& avx2_vector_ops();
const VectorOps& avx512vnni_vector_ops();
#endif
#if defined(__aarch64__)
void neon_kernels(gguf::TensorType type, VecDotFn* vec_dot, DotTileFn* dot_tile);  // dot_neon.cpp
#endif

namespace {

using gguf::TensorType;

// The portable dot product: dequantise a block's worth of each row and multiply in float. Slow,
// but correct for every type pair; SIMD levels replace it where they have a kernel.
template <TensorType kWeight, TensorType kAct>
float generic_dot(int64_t n, const void* w, const void* a) {
  constexpr int64_t kChunk = 256;  // a multiple of every block size
  float wf[kChunk], af[kChunk];
  const auto* wp = static_cast<const uint8_t*>(w);
  const auto* ap = static_cast<const uint8_t*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; i += kChunk) {
    int64_t m = std::min(kChunk, n - i);
    reference::dequantize_row(kWeight, wp + gguf::bytes_for(kWeight, i), wf, m);
    reference::dequantize_row(kAct, ap + gguf::bytes_for(kAct, i), af, m);
    for (int64_t j = 0; j < m; ++j) sum += wf[j] * af[j];
  }
  return sum;
}

template <TensorType kWeight, TensorType kAct>
void generic_tile(int64_t n, const void* w, size_t row_bytes, const void* a, size_t act_bytes,
                  int tokens, float* out, size_t out_stride) {
  for (int t = 0; t < tokens; ++t)
    for (int r = 0; r < kTileRows; ++r)
      out[t * out_stride + r] =
          generic_dot<kWeight, kAct>(n, static_cast<const uint8_t*>(w) + r * row_bytes,
                                     static_cast<const uint8_t*>(a) + t * act_bytes);
}

template <TensorType kType>
void quantize_as(const float* x, void* y, int64_t n) {
  reference::quantize_row(kType, x, y, n);
}
template <TensorType kType>
void dequantize_as(const void* x, float* y, int64_t n) {
  reference::dequantize_row(kType, x, y, n);
}

template <TensorType kWeight, TensorType kAct>
constexpr TypeKernels scalar_entry() {
  return {kWeight,
          kAct,
          quantize_as<kAct>,
          generic_dot<kWeight, kAct>,
          generic_tile<kWeight, kAct>,
          dequantize_as<kWeight>,
          Isa::Scalar};
}

constexpr std::array kScalar = {
    scalar_entry<TensorType::F32, TensorType::F32>(),
    scalar_entry<TensorType::F16, TensorType::F32>(),
    scalar_entry<TensorType::BF16, TensorType::F32>(),
    scalar_entry<TensorType::Q4_0, TensorType::Q8_0>(),
    scalar_entry<TensorType::Q4_1, TensorType::Q8_0>(),
    scalar_entry<TensorType::Q5_0, TensorType::Q8_0>(),
    scalar_entry<TensorType::Q5_1, TensorType::Q8_0>(),
    scalar_entry<TensorType::Q8_0, TensorType::Q8_0>(),
    scalar_entry<TensorType::IQ4_NL, TensorType::Q8_0>(),
    scalar_entry<TensorType::Q2_K, TensorType::Q8_K>(),
    scalar_entry<TensorType::Q3_K, TensorType::Q8_K>(),
    scalar_entry<TensorType::Q4_K, TensorType::Q8_K>(),
    scalar_entry<TensorType::Q5_K, TensorType::Q8_K>(),
    scalar_entry<TensorType::Q6_K, TensorType::Q8_K>(),
    scalar_entry<TensorType::IQ4_XS, TensorType::Q8_K>(),
};

// One table per level: the scalar entries with vec_dot replaced where that level has a kernel.
struct Tables {
  std::array<std::vector<TypeKernels>, kIsaCount> by_isa;
  Tables() {
    for (int level = 0; level < kIsaCount; ++level) {
      for (TypeKernels k : kScalar) {
#if defined(__x86_64__)
        VecDotFn dot = nullptr;
        DotTileFn tile = nullptr;
        if (level == static_cast<int>(Isa::Avx2)) avx2_kernels(k.weight_type, &dot, &tile);
        if (level == static_cast<int>(Isa::Avx512Vnni)) {
          avx512vnni_kernels(k.weight_type, &dot, &tile);
          k.gemm = avx512vnni_gemm(k.weight_type);
          k.interleaved = k.gemm ? avx512vnni_interleaved(k.weight_type) : nullptr;
          if (k.act_type == TensorType::Q8_0) k.quantize_act = quantize_q8_0_avx512;
          if (k.act_type == TensorType::Q8_K) k.quantize_act = quantize_q8_k_avx512;
        }
        if (dot) k.vec_dot = dot, k.dot_tile = tile, k.isa = static_cast<Isa>(level);
#elif defined(__aarch64__)
        VecDotFn dot = nullptr;
        DotTileFn tile = nullptr;
        if (level == static_cast<int>(Isa::Neon)) neon_kernels(k.weight_type, &dot, &tile);
        if (dot) k.vec_dot = dot, k.dot_tile = tile, k.isa = static_cast<Isa>(level);
#endif
        by_isa[level].push_back(k);
      }
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const TypeKernels* find_kernels(TensorType type, Isa isa) {
  for (const TypeKernels& k : tables().by_isa[static_cast<int>(isa)])
    if (k.weight_type == type) return &k;
  return nullptr;
}

TensorType activation_type(TensorType type) {
  const TypeKernels* k = find_kernels(type, Isa::Scalar);
  return k ? k->act_type : TensorType::F32;
}

namespace {

void scalar_fp16_to_f32(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(x[i]);
}
void scalar_f32_to_fp16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(x[i]);
}
float scalar_dot(const float* x, const float* y, int64_t n) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * y[i];
  return sum;
}
void scalar_axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
void scalar_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}
void scalar_gelu_mul(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    out[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x))) * up[i];
  }
}
int64_t scalar_argmax(const float* x, int64_t n) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
  return best < 0 ? 0 : best;
}
constexpr VectorOps kScalarVectorOps = {scalar_fp16_to_f32, scalar_f32_to_fp16, scalar_dot,
                                        scalar_axpy,        scalar_silu_mul,    scalar_gelu_mul,
                                        scalar_argmax};

}  // namespace

const VectorOps& vector_ops(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512Vnni) return avx512vnni_vector_ops();
  if (isa == Isa::Avx2) return avx2_vector_ops();
#endif
  return kScalarVectorOps;
}

}  // namespace ember::cpu
