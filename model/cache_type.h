// The element type of the KV cache (`--cache-type`): what each cached key and value row is
// stored as, and the bytes it takes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ember::model {

// kQ8_0 stores each row as GGUF's Q8_0 blocks (32 int8 values and one fp16 scale, 34 bytes),
// about half of F16's memory; it needs head sizes that are multiples of 32.
enum class CacheType { kF16, kF32, kQ8_0 };

// Bytes of `values` cached values; for kQ8_0 `values` must be a whole number of 32-value blocks
// (check_cache_type keeps it so: rows and heads are).
inline size_t kv_bytes(CacheType type, int64_t values) {
  switch (type) {
    case CacheType::kF32:
      return size_t(values) * 4;
    case CacheType::kQ8_0:
      return size_t(values) / 32 * 34;
    case CacheType::kF16:
      break;
  }
  return size_t(values) * 2;
}

// Each type with the name --cache-type takes for it (llama.cpp's --cache-type-k names).
struct CacheTypeName {
  CacheType type;
  const char* name;
};
inline constexpr CacheTypeName kCacheTypeNames[] = {
    {CacheType::kF16, "f16"}, {CacheType::kQ8_0, "q8_0"}, {CacheType::kF32, "f32"}};

// The name --cache-type takes for `type`: "f16", "q8_0" or "f32".
inline const char* cache_type_name(CacheType type) {
  for (const CacheTypeName& c : kCacheTypeNames)
    if (c.type == type) return c.name;
  return "f16";
}

// One of kCacheTypeNames' names, in any case; throws std::invalid_argument naming the choices.
inline CacheType parse_cache_type(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  for (const CacheTypeName& c : kCacheTypeNames)
    if (lower == c.name) return c.type;
  throw std::invalid_argument("unknown KV cache type '" + std::string(name) +
                              "': use f16, q8_0 or f32");
}

// Throws std::runtime_error, saying what to use instead, when `type` cannot cache attention
// heads of `head_dim` values (q8_0: whole 32-value blocks per head).
inline void check_cache_type(CacheType type, int64_t head_dim) {
  if (type == CacheType::kQ8_0 && head_dim % 32 != 0)
    throw std::runtime_error(
        "--cache-type q8_0 needs attention heads of a multiple of 32 values; "
        "this model's have " +
        std::to_string(head_dim) + ": use --cache-type f16");
}

}  // namespace ember::model
