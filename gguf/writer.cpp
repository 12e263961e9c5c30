#include "gguf/writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "gguf/error.h"
#include "gguf/reader.h"

namespace gguf {
namespace {

template <class T>
void append(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof v);
}

void append_string(std::vector<uint8_t>& out, std::string_view s) {
  append<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// Encodes an array value read from a file: element type, count, elements.
void append_array(std::vector<uint8_t>& out, const Value& v) {
  append<uint32_t>(out, static_cast<uint32_t>(v.element_type()));
  append<uint64_t>(out, v.size());
  for (uint64_t i = 0; i < v.size(); ++i) {
    switch (v.element_type()) {
      case ValueType::STRING:
        append_string(out, v.string_at(i));
        break;
      case ValueType::ARRAY:
        append_array(out, v.array_at(i));
        break;
      case ValueType::F32:
        append<float>(out, static_cast<float>(v.double_at(i)));
        break;
      case ValueType::F64:
        append<double>(out, v.double_at(i));
        break;
      default: {
        int64_t x = v.int_at(i);  // the low bytes are the value, whatever its width
        const auto* p = reinterpret_cast<const uint8_t*>(&x);
        out.insert(out.end(), p, p + scalar_size(v.element_type()));
      }
    }
  }
}

template <class T>
std::vector<uint8_t> encode_scalar(T v) {
  std::vector<uint8_t> out;
  append(out, v);
  return out;
}

template <class T>
std::vector<uint8_t> encode_numbers(ValueType element, std::span<const T> items) {
  std::vector<uint8_t> out;
  append<uint32_t>(out, static_cast<uint32_t>(element));
  append<uint64_t>(out, items.size());
  for (T x : items) append(out, x);
  return out;
}

}  // namespace

Writer::Entry& Writer::entry(std::string_view key, ValueType type) {
  for (Entry& e : entries_)
    if (e.key == key) {
      e.type = type;
      e.encoded.clear();
      return e;
    }
  return entries_.emplace_back(Entry{std::string(key), type, {}});
}

void Writer::set_raw(std::string_view key, ValueType type, std::vector<uint8_t> encoded) {
  entry(key, type).encoded = std::move(encoded);
}

void Writer::set_alignment(uint32_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw Error("alignment must be a power of two");
  alignment_ = alignment;
  set_u32("general.alignment", alignment);
}

void Writer::set_u8(std::string_view k, uint8_t v) {
  set_raw(k, ValueType::U8, encode_scalar(v));
}
void Writer::set_i8(std::string_view k, int8_t v) {
  set_raw(k, ValueType::I8, encode_scalar(v));
}
void Writer::set_u16(std::string_view k, uint16_t v) {
  set_raw(k, ValueType::U16, encode_scalar(v));
}
void Writer::set_i16(std::string_view k, int16_t v) {
  set_raw(k, ValueType::I16, encode_scalar(v));
}
void Writer::set_u32(std::string_view k, uint32_t v) {
  set_raw(k, ValueType::U32, encode_scalar(v));
}
void Writer::set_i32(std::string_view k, int32_t v) {
  set_raw(k, ValueType::I32, encode_scalar(v));
}
void Writer::set_u64(std::string_view k, uint64_t v) {
  set_raw(k, ValueType::U64, encode_scalar(v));
}
void Writer::set_i64(std::string_view k, int64_t v) {
  set_raw(k, ValueType::I64, encode_scalar(v));
}
void Writer::set_f32(std::string_view k, float v) {
  set_raw(k, ValueType::F32, encode_scalar(v));
}
void Writer::set_f64(std::string_view k, double v) {
  set_raw(k, ValueType::F64, encode_scalar(v));
}
void Writer::set_bool(std::string_view k, bool v) {
  set_raw(k, ValueType::BOOL, encode_scalar<uint8_t>(v ? 1 : 0));
}

void Writer::set_string(std::string_view key, std::string_view v) {
  std::vector<uint8_t> out;
  append_string(out, v);
  set_raw(key, ValueType::STRING, std::move(out));
}

void Writer::set_strings(std::string_view key, const std::vector<std::string>& items) {
  std::vector<uint8_t> out;
  append<uint32_t>(out, static_cast<uint32_t>(ValueType::STRING));
  append<uint64_t>(out, items.size());
  for (const std::string& s : items) append_string(out, s);
  set_raw(key, ValueType::ARRAY, std::move(out));
}

void Writer::set_i32s(std::string_view key, std::span<const int32_t> items) {
  set_raw(key, ValueType::ARRAY, encode_numbers(ValueType::I32, items));
}

void Writer::set_f32s(std::string_view key, std::span<const float> items) {
  set_raw(key, ValueType::ARRAY, encode_numbers(ValueType::F32, items));
}

void Writer::set_value(std::string_view key, const Value& v) {
  std::vector<uint8_t> out;
  if (v.type() == ValueType::STRING) {
    append_string(out, v.as_string());
  } else if (v.type() == ValueType::ARRAY) {
    append_array(out, v);
  } else if (v.type() == ValueType::F32) {
    append<float>(out, static_cast<float>(v.as_double()));
  } else if (v.type() == ValueType::F64) {
    append<double>(out, v.as_double());
  } else {
    uint64_t x = v.type() == ValueType::U64 ? v.as_uint() : static_cast<uint64_t>(v.as_int());
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    out.insert(out.end(), p, p + scalar_size(v.type()));
  }
  set_raw(key, v.type(), std::move(out));
}

void Writer::add_tensor(std::string_view name, TensorType type, std::vector<uint64_t> shape,
                        std::vector<uint8_t> data) {
  if (shape.empty() || shape.size() > kMaxDims)
    throw Error("tensor '" + std::string(name) + "' needs 1 to 4 dimensions");
  uint64_t elements = 1;
  for (uint64_t n : shape) elements *= n;
  const TypeTraits& t = traits(type);
  if (shape[0] % t.block_size != 0)
    throw Error("tensor '" + std::string(name) + "': row length is not a multiple of the " +
                std::string(t.name) + " block size");
  if (data.size() != bytes_for(type, elements))
    throw Error("tensor '" + std::string(name) + "': data has " + std::to_string(data.size()) +
                " bytes, its shape and type need " + std::to_string(bytes_for(type, elements)));
  tensors_.push_back({std::string(name), type, std::move(shape), std::move(data)});
}

void Writer::write(const std::function<void(const void*, size_t)>& sink) const {
  std::vector<uint8_t> header;
  append<uint32_t>(header, kMagic);
  append<uint32_t>(header, version_);
  append<uint64_t>(header, tensors_.size());
  append<uint64_t>(header, entries_.size());
  for (const Entry& e : entries_) {
    append_string(header, e.key);
    append<uint32_t>(header, static_cast<uint32_t>(e.type));
    header.insert(header.end(), e.encoded.begin(), e.encoded.end());
  }
  auto padded = [&](uint64_t n) { return (n + alignment_ - 1) / alignment_ * alignment_; };
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    append_string(header, t.name);
    append<uint32_t>(header, static_cast<uint32_t>(t.shape.size()));
    for (uint64_t n : t.shape) append<uint64_t>(header, n);
    append<uint32_t>(header, static_cast<uint32_t>(t.type));
    append<uint64_t>(header, offset);
    offset = padded(offset + t.data.size());
  }
  header.resize(padded(header.size()), 0);
  sink(header.data(), header.size());
  static const std::vector<uint8_t> zeros(4096, 0);
  for (const Tensor& t : tensors_) {
    sink(t.data.data(), t.data.size());
    uint64_t pad = padded(t.data.size()) - t.data.size();
    while (pad > 0) {
      size_t n = std::min<uint64_t>(pad, zeros.size());
      sink(zeros.data(), n);
      pad -= n;
    }
  }
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> out;
  write([&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

void Writer::write_file(const std::string& path) const {
  std::string tmp = path + ".tmp";
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(tmp.c_str(), "wb"), &std::fclose);
  if (!f) throw Error(tmp + ": cannot create: " + std::strerror(errno));
  bool ok = true;
  write([&](const void* p, size_t n) { ok = ok && std::fwrite(p, 1, n, f.get()) == n; });
  ok = std::fflush(f.get()) == 0 && ok;
  f.reset();
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write: " + std::strerror(errno));
  }
}

}  // namespace gguf
