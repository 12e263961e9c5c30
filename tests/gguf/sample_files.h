// Small GGUF files built with the project's writer, for the reader's tests and the fuzz corpus.
#pragma once

#include <cstdint>
#include <vector>

#include "gguf/writer.h"

namespace ember::test {

// A file with metadata of every value type (nested arrays too) and four tensors of different
// types and ranks. Tensor data is a deterministic byte pattern.
gguf::Writer sample_writer();
inline std::vector<uint8_t> sample_bytes() {
  return sample_writer().to_bytes();
}

// `n` bytes of a repeatable pattern seeded by `seed`.
std::vector<uint8_t> pattern(size_t n, uint32_t seed);

}  // namespace ember::test
