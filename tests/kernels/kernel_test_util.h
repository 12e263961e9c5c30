// Helpers for the kernel tests: random rows in any supported type.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "gguf/types.h"
#include "kernels/cpu/reference.h"

namespace ember::test {

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

// n random values quantised into `type` with the reference quantiser.
inline std::vector<uint8_t> random_row(gguf::TensorType type, int64_t n, uint32_t seed) {
  std::vector<float> x = random_floats(n, seed);
  std::vector<uint8_t> out(gguf::bytes_for(type, n));
  cpu::reference::quantize_row(type, x.data(), out.data(), n);
  return out;
}

// The weight types the CPU backend computes with.
inline std::vector<gguf::TensorType> compute_types() {
  using T = gguf::TensorType;
  return {T::F32,  T::F16,  T::BF16, T::Q4_0, T::Q4_1, T::Q5_0,   T::Q5_1,  T::Q8_0,
          T::Q2_K, T::Q3_K, T::Q4_K, T::Q5_K, T::Q6_K, T::IQ4_NL, T::IQ4_XS};
}

}  // namespace ember::test
