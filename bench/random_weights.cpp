#include "bench/random_weights.h"

#include <algorithm>

#include "kernels/cpu/reference.h"

namespace ember::bench {

std::vector<uint8_t> random_weights(gguf::TensorType type, size_t bytes) {
  const int64_t sample_elements = 1 << 20;
  std::vector<float> x(sample_elements);
  uint32_t s = 12345;
  for (float& v : x) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int32_t>(s)) / 2147483648.0f;
  }
  std::vector<uint8_t> sample(gguf::bytes_for(type, sample_elements));
  cpu::reference::quantize_row(type, x.data(), sample.data(), sample_elements);
  std::vector<uint8_t> out(bytes);
  for (size_t i = 0; i < bytes; i += sample.size())
    std::copy_n(sample.begin(), std::min(sample.size(), bytes - i), out.begin() + i);
  return out;
}

}  // namespace ember::bench
