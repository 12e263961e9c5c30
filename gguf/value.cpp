#include "gguf/value.h"

#include <cstdio>
#include <cstdlib>

#include "gguf/error.h"

namespace gguf {
namespace {

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Reads one scalar of an integer or bool type as int64 (uint64 above INT64_MAX wraps; callers
// that need the full range use as_uint).
int64_t load_int(ValueType t, const uint8_t* p) {
  switch (t) {
    case ValueType::U8:
      return load<uint8_t>(p);
    case ValueType::I8:
      return load<int8_t>(p);
    case ValueType::U16:
      return load<uint16_t>(p);
    case ValueType::I16:
      return load<int16_t>(p);
    case ValueType::U32:
      return load<uint32_t>(p);
    case ValueType::I32:
      return load<int32_t>(p);
    case ValueType::U64:
      return static_cast<int64_t>(load<uint64_t>(p));
    case ValueType::I64:
      return load<int64_t>(p);
    case ValueType::BOOL:
      return load<uint8_t>(p) != 0;
    default:
      break;
  }
  throw Error("metadata value of type " + std::string(value_type_name(t)) + " is not an integer");
}

double load_double(ValueType t, const uint8_t* p) {
  if (t == ValueType::F32) return load<float>(p);
  if (t == ValueType::F64) return load<double>(p);
  if (t == ValueType::U64) return static_cast<double>(load<uint64_t>(p));
  return static_cast<double>(load_int(t, p));
}

}  // namespace

std::string_view value_type_name(ValueType type) {
  switch (type) {
    case ValueType::U8:
      return "uint8";
    case ValueType::I8:
      return "int8";
    case ValueType::U16:
      return "uint16";
    case ValueType::I16:
      return "int16";
    case ValueType::U32:
      return "uint32";
    case ValueType::I32:
      return "int32";
    case ValueType::F32:
      return "float32";
    case ValueType::BOOL:
      return "bool";
    case ValueType::STRING:
      return "string";
    case ValueType::ARRAY:
      return "array";
    case ValueType::U64:
      return "uint64";
    case ValueType::I64:
      return "int64";
    case ValueType::F64:
      return "float64";
  }
  return "unknown";
}

size_t scalar_size(ValueType type) {
  switch (type) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::BOOL:
      return 1;
    case ValueType::U16:
    case ValueType::I16:
      return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32:
      return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64:
      return 8;
    default:
      return 0;
  }
}

Value Value::scalar(ValueType type, const uint8_t* bytes) {
  Value v;
  v.type_ = type;
  std::memcpy(v.scalar_, bytes, scalar_size(type));
  return v;
}

Value Value::string(std::string_view s) {
  Value v;
  v.type_ = ValueType::STRING;
  v.string_ = s;
  return v;
}

Value Value::numeric_array(ValueType element, uint64_t count, const uint8_t* first) {
  Value v;
  v.type_ = ValueType::ARRAY;
  v.element_ = element;
  v.count_ = count;
  v.numbers_ = first;
  return v;
}

Value Value::string_array(std::vector<std::string_view> items) {
  Value v;
  v.type_ = ValueType::ARRAY;
  v.element_ = ValueType::STRING;
  v.count_ = items.size();
  v.strings_ = std::move(items);
  return v;
}

Value Value::array_of_arrays(std::vector<Value> items) {
  Value v;
  v.type_ = ValueType::ARRAY;
  v.element_ = ValueType::ARRAY;
  v.count_ = items.size();
  v.arrays_ = std::move(items);
  return v;
}

int64_t Value::as_int() const {
  return load_int(type_, scalar_);
}

uint64_t Value::as_uint() const {
  if (type_ == ValueType::U64) return load<uint64_t>(scalar_);
  int64_t v = as_int();
  if (v < 0)
    throw Error("metadata value " + std::to_string(v) + " is negative where a size was expected");
  return static_cast<uint64_t>(v);
}

double Value::as_double() const {
  if (!is_integer(type_) && !is_float(type_))
    throw Error("metadata value of type " + std::string(value_type_name(type_)) +
                " is not a number");
  return load_double(type_, scalar_);
}

bool Value::as_bool() const {
  if (type_ != ValueType::BOOL)
    throw Error("metadata value of type " + std::string(value_type_name(type_)) + " is not a bool");
  return scalar_[0] != 0;
}

std::string_view Value::as_string() const {
  if (type_ != ValueType::STRING)
    throw Error("metadata value of type " + std::string(value_type_name(type_)) +
                " is not a string");
  return string_;
}

int64_t Value::int_at(uint64_t i) const {
  if (i >= count_ || numbers_ == nullptr) throw Error("metadata array index out of range");
  return load_int(element_, numbers_ + i * scalar_size(element_));
}

double Value::double_at(uint64_t i) const {
  if (i >= count_ || numbers_ == nullptr) throw Error("metadata array index out of range");
  return load_double(element_, numbers_ + i * scalar_size(element_));
}

std::string Value::to_display_string(size_t max_items) const {
  // Shortest form that reads back to the same float32 or float64.
  auto number = [](double d, ValueType t) {
    char buf[40];
    std::snprintf(buf, sizeof buf, t == ValueType::F32 ? "%.8g" : "%.17g", d);
    char shorter[40];
    for (int digits = 1; digits < 17; ++digits) {
      std::snprintf(shorter, sizeof shorter, "%.*g", digits, d);
      double back = std::strtod(shorter, nullptr);
      if (t == ValueType::F32 ? float(back) == float(d) : back == d) return std::string(shorter);
    }
    return std::string(buf);
  };
  switch (type_) {
    case ValueType::STRING:
      return std::string(string_);
    case ValueType::BOOL:
      return as_bool() ? "true" : "false";
    case ValueType::F32:
    case ValueType::F64:
      return number(as_double(), type_);
    case ValueType::U64:
      return std::to_string(as_uint());
    case ValueType::ARRAY: {
      if (count_ > max_items)
        return "[" + std::to_string(count_) + " " + std::string(value_type_name(element_)) + "s]";
      std::string out = "[";
      for (uint64_t i = 0; i < count_; ++i) {
        if (i) out += ", ";
        if (element_ == ValueType::STRING)
          out += "\"" + std::string(strings_[i]) + "\"";
        else if (element_ == ValueType::ARRAY)
          out += arrays_[i].to_display_string(max_items);
        else if (is_float(element_))
          out += number(double_at(i), element_);
        else if (element_ == ValueType::U64)
          out += std::to_string(static_cast<uint64_t>(int_at(i)));
        else
          out += std::to_string(int_at(i));
      }
      return out + "]";
    }
    default:
      return std::to_string(as_int());
  }
}

}  // namespace gguf
