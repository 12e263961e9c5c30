// GGUF writer: metadata and tensors, written in the layout reader.h describes. Used by tests,
// by the quantiser and by the benchmark-model generator. Keys keep the order they were first set
// in; setting a key again replaces its value.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/types.h"
#include "gguf/value.h"

namespace gguf {

class Writer {
 public:
  void set_version(uint32_t version) { version_ = version; }  // 3 by default; 2 for tests
  void set_alignment(uint32_t alignment);                     // writes general.alignment

  void set_u8(std::string_view key, uint8_t v);
  void set_i8(std::string_view key, int8_t v);
  void set_u16(std::string_view key, uint16_t v);
  void set_i16(std::string_view key, int16_t v);
  void set_u32(std::string_view key, uint32_t v);
  void set_i32(std::string_view key, int32_t v);
  void set_u64(std::string_view key, uint64_t v);
  void set_i64(std::string_view key, int64_t v);
  void set_f32(std::string_view key, float v);
  void set_f64(std::string_view key, double v);
  void set_bool(std::string_view key, bool v);
  void set_string(std::string_view key, std::string_view v);
  void set_strings(std::string_view key, const std::vector<std::string>& items);
  void set_i32s(std::string_view key, std::span<const int32_t> items);
  void set_f32s(std::string_view key, std::span<const float> items);
  // Copies a value read from another file, whatever its type (arrays of arrays included).
  void set_value(std::string_view key, const Value& v);
  // Raw: a key whose value bytes (type id excluded) are already encoded. For tests.
  void set_raw(std::string_view key, ValueType type, std::vector<uint8_t> encoded);

  // shape in ggml order (shape[0] = row length). data must hold exactly the tensor's bytes.
  void add_tensor(std::string_view name, TensorType type, std::vector<uint64_t> shape,
                  std::vector<uint8_t> data);

  // Writes the file through a temporary name and renames it into place, so a reader never sees
  // a half-written file. Throws gguf::Error.
  void write_file(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;

 private:
  struct Entry {
    std::string key;
    ValueType type;
    std::vector<uint8_t> encoded;  // the value's bytes after its type id
  };
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<uint64_t> shape;
    std::vector<uint8_t> data;
  };
  void write(const std::function<void(const void*, size_t)>& sink) const;
  Entry& entry(std::string_view key, ValueType type);

  uint32_t version_ = 3;
  uint32_t alignment_ = 32;
  std::vector<Entry> entries_;
  std::vector<Tensor> tensors_;
};

}  // namespace gguf
