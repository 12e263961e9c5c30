// A metadata value of a GGUF file, read in place: strings and arrays point into the mapped file,
// so a 262k-entry vocabulary costs one vector of string views and no copies of its bytes.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace gguf {

static_assert(std::endian::native == std::endian::little,
              "ember reads GGUF (little-endian) in place");

// Value type ids fixed by the GGUF format.
enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// "uint32", "string", ... as the GGUF specification names them; "unknown" for other ids.
std::string_view value_type_name(ValueType type);
// Size in bytes of a scalar of this type; 0 for STRING and ARRAY (variable) and unknown ids.
size_t scalar_size(ValueType type);
inline bool is_integer(ValueType t) {
  return t == ValueType::U8 || t == ValueType::I8 || t == ValueType::U16 || t == ValueType::I16 ||
         t == ValueType::U32 || t == ValueType::I32 || t == ValueType::U64 || t == ValueType::I64;
}
inline bool is_float(ValueType t) {
  return t == ValueType::F32 || t == ValueType::F64;
}

class Value {
 public:
  Value() = default;
  static Value scalar(ValueType type, const uint8_t* bytes);  // bytes: scalar_size(type) of them
  static Value string(std::string_view s);
  static Value numeric_array(ValueType element, uint64_t count, const uint8_t* first);
  static Value string_array(std::vector<std::string_view> items);
  static Value array_of_arrays(std::vector<Value> items);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::ARRAY; }
  bool is_string() const { return type_ == ValueType::STRING; }

  // Scalars. Integer getters accept every integer type, to_double every number, as_bool BOOL.
  // Asking for the wrong kind throws gguf::Error naming both types.
  int64_t as_int() const;
  uint64_t as_uint() const;
  double as_double() const;
  bool as_bool() const;
  std::string_view as_string() const;

  // Arrays.
  ValueType element_type() const { return element_; }
  uint64_t size() const { return count_; }
  std::string_view string_at(uint64_t i) const { return strings_.at(i); }
  const std::vector<std::string_view>& strings() const { return strings_; }
  int64_t int_at(uint64_t i) const;    // integer or bool elements
  double double_at(uint64_t i) const;  // any numeric elements
  const Value& array_at(uint64_t i) const { return arrays_.at(i); }
  template <class T>
  std::vector<T> numbers() const {  // whole numeric array, converted to T
    std::vector<T> out(count_);
    for (uint64_t i = 0; i < count_; ++i)
      out[i] = is_float(element_) ? static_cast<T>(double_at(i)) : static_cast<T>(int_at(i));
    return out;
  }

  // A short human-readable rendering ("[1024 strings]" for long arrays).
  std::string to_display_string(size_t max_items = 8) const;

 private:
  ValueType type_ = ValueType::U8;
  ValueType element_ = ValueType::U8;  // arrays only
  uint64_t count_ = 0;                 // arrays only
  uint8_t scalar_[8] = {};             // scalars: the little-endian bytes
  std::string_view string_;            // STRING
  const uint8_t* numbers_ = nullptr;   // numeric arrays: first element (unaligned)
  std::vector<std::string_view> strings_;
  std::vector<Value> arrays_;
};

}  // namespace gguf
