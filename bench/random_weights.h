// Weights for the kernel benchmarks: genuinely quantised random values of any type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gguf/types.h"

namespace ember::bench {

// `bytes` of weights of `type`: a few MiB of quantised random values, repeated.
std::vector<uint8_t> random_weights(gguf::TensorType type, size_t bytes);

}  // namespace ember::bench
