// Tensor element types that a GGUF file may carry, and their block layouts.
//
// Every ggml type stores a row as a sequence of blocks: `block_size` elements packed into
// `block_bytes` bytes. Plain types (F32, F16, ...) have blocks of one element. The numeric ids
// are fixed by the GGUF format; ids missing from the table are unknown to ember.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace gguf {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  Q4_0_4_4 = 31,  // interleaved repacks, no longer written by llama.cpp but still found in files
  Q4_0_4_8 = 32,
  Q4_0_8_8 = 33,
  TQ1_0 = 34,
  TQ2_0 = 35,
  IQ4_NL_4_4 = 36,
  IQ4_NL_4_8 = 37,
  IQ4_NL_8_8 = 38,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
};

struct TypeTraits {
  TensorType type;
  std::string_view name;  // as llama.cpp and the gguf Python package spell it
  uint32_t block_size;    // elements per block
  uint32_t block_bytes;   // bytes per block
};

// Traits of a type id, or nullptr when the id is not a known ggml type.
const TypeTraits* find_type(uint32_t id);
// Traits of a known type (never null).
const TypeTraits& traits(TensorType type);
// Looks a type up by name, case-insensitively ("q4_k" finds Q4_K).
std::optional<TensorType> type_from_name(std::string_view name);
inline std::string_view type_name(TensorType type) {
  return traits(type).name;
}

// Bytes that `n_elements` consecutive elements occupy; n_elements must be a multiple of the
// block size (callers validate that first).
inline uint64_t bytes_for(TensorType type, uint64_t n_elements) {
  const TypeTraits& t = traits(type);
  return n_elements / t.block_size * t.block_bytes;
}

// Every known type, in id order (for tests and listings).
struct TypeTable {
  const TypeTraits* begin;
  const TypeTraits* end;
};
TypeTable all_types();

}  // namespace gguf
