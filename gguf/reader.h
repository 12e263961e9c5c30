// GGUF v2/v3 reader. The layout of a file (all little-endian):
//
//   "GGUF" u32 version | u64 tensor_count | u64 kv_count
//   kv_count  × { string key | u32 value_type | value }
//   tensor_count × { string name | u32 n_dims | u64 dims[n_dims] | u32 type | u64 offset }
//   padding to `general.alignment` (default 32) | tensor data (offsets are relative to here)
//
// where a string is { u64 length | bytes } and an array value is { u32 element_type | u64 count |
// elements }. parse() validates everything it reads against the buffer's size and throws
// gguf::Error with a message naming what is wrong; it never reads outside the buffer.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf/mapped_file.h"
#include "gguf/types.h"
#include "gguf/value.h"

namespace gguf {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;

struct TensorInfo {
  std::string_view name;
  TensorType type = TensorType::F32;
  uint32_t n_dims = 0;
  // ggml order: shape[0] is the length of a contiguous row; dims past n_dims are 1.
  // A weight matrix of a linear layer y = W x is [n_in, n_out].
  std::array<uint64_t, kMaxDims> shape = {1, 1, 1, 1};
  uint64_t offset = 0;       // from the start of its file's tensor data section
  uint64_t file_offset = 0;  // from the start of its file
  uint64_t bytes = 0;
  const uint8_t* data = nullptr;  // into the mapped file; null when parsed without data
  uint32_t split = 0;             // index of the file holding it, for split models

  uint64_t elements() const { return shape[0] * shape[1] * shape[2] * shape[3]; }
  uint64_t rows() const { return shape[1] * shape[2] * shape[3]; }
};

struct KeyValue {
  std::string_view key;
  Value value;
};

class Metadata {
 public:
  void add(std::string_view key, Value value);  // throws on a duplicate key
  const Value* find(std::string_view key) const;
  const std::vector<KeyValue>& entries() const { return entries_; }

  // Typed lookups: nullopt when the key is absent, gguf::Error when its type does not fit.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_double(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string_view> get_string(std::string_view key) const;
  // The same, throwing "missing metadata key K" when absent.
  int64_t require_int(std::string_view key) const;
  std::string_view require_string(std::string_view key) const;

 private:
  std::vector<KeyValue> entries_;
  std::unordered_map<std::string_view, size_t> index_;
};

// What a GGUF buffer holds, as views into that buffer.
struct Contents {
  uint32_t version = 0;
  Metadata metadata;
  std::vector<TensorInfo> tensors;
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;   // where tensor data starts
  uint64_t header_bytes = 0;  // bytes of header, metadata and tensor infos (before padding)

  const TensorInfo* find_tensor(std::string_view name) const;
};

// Parses and validates a whole GGUF file held in `bytes`. Tensor data pointers point into it.
Contents parse(std::span<const uint8_t> bytes);

// One GGUF file, mapped and parsed. Movable; views stay valid while it lives.
class File {
 public:
  // Throws gguf::Error whose message starts with the path.
  static File open(const std::string& path);

  const std::string& path() const { return map_.path(); }
  uint64_t size() const { return map_.size(); }
  const Contents& contents() const { return contents_; }
  const Metadata& metadata() const { return contents_.metadata; }
  const std::vector<TensorInfo>& tensors() const { return contents_.tensors; }

 private:
  MappedFile map_;
  Contents contents_;
};

}  // namespace gguf
