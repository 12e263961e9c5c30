#include "gguf/reader.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "gguf/error.h"

namespace gguf {
namespace {

constexpr int kMaxArrayNesting = 8;
// Smallest encodings, used to reject counts that cannot fit in what is left of the file before
// allocating anything for them.
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;            // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim, type, offset

std::string str(std::string_view s) {
  return std::string(s);
}

// Sequential, bounds-checked reads from the buffer.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint64_t position() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  const uint8_t* take(uint64_t n, const std::string& what) {
    if (n > remaining())
      throw Error("file is truncated: " + what + " at offset " + std::to_string(pos_) + " needs " +
                  std::to_string(n) + " bytes, only " + std::to_string(remaining()) + " remain");
    const uint8_t* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }

  template <class T>
  T read(const std::string& what) {
    T v;
    std::memcpy(&v, take(sizeof v, what), sizeof v);
    return v;
  }

  std::string_view read_string(const std::string& what) {
    uint64_t n = read<uint64_t>(what + " length");
    if (n > remaining())
      throw Error(what + " at offset " + std::to_string(pos_ - 8) + " claims " + std::to_string(n) +
                  " bytes but only " + std::to_string(remaining()) + " remain in the file");
    return {reinterpret_cast<const char*>(take(n, what)), static_cast<size_t>(n)};
  }

 private:
  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
};

uint64_t min_encoded_size(ValueType t) {
  if (t == ValueType::STRING) return 8;
  if (t == ValueType::ARRAY) return 4 + 8;
  return scalar_size(t);
}

Value read_value(Cursor& in, ValueType type, const std::string& where, int depth);

Value read_array(Cursor& in, const std::string& where, int depth) {
  if (depth >= kMaxArrayNesting)
    throw Error(where + ": arrays nested deeper than " + std::to_string(kMaxArrayNesting));
  auto element = static_cast<ValueType>(in.read<uint32_t>(where + " array type"));
  uint64_t min_size = min_encoded_size(element);
  if (min_size == 0)
    throw Error(where + ": unknown array element type " +
                std::to_string(static_cast<uint32_t>(element)));
  uint64_t count = in.read<uint64_t>(where + " array length");
  if (count > in.remaining() / min_size)
    throw Error(where + ": array claims " + std::to_string(count) + " elements of type " +
                str(value_type_name(element)) + ", more than the rest of the file can hold");
  if (element == ValueType::STRING) {
    std::vector<std::string_view> items(count);
    for (auto& s : items) s = in.read_string(where + " element");
    return Value::string_array(std::move(items));
  }
  if (element == ValueType::ARRAY) {
    std::vector<Value> items;
    items.reserve(count);
    for (uint64_t i = 0; i < count; ++i) items.push_back(read_array(in, where, depth + 1));
    return Value::array_of_arrays(std::move(items));
  }
  const uint8_t* first = in.take(count * min_size, where + " array data");
  return Value::numeric_array(element, count, first);
}

Value read_value(Cursor& in, ValueType type, const std::string& where, int depth) {
  if (type == ValueType::STRING) return Value::string(in.read_string(where));
  if (type == ValueType::ARRAY) return read_array(in, where, depth);
  size_t n = scalar_size(type);
  if (n == 0)
    throw Error(where + ": unknown value type " + std::to_string(static_cast<uint32_t>(type)));
  return Value::scalar(type, in.take(n, where));
}

void read_metadata(Cursor& in, uint64_t kv_count, Metadata& out) {
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string_view key = in.read_string("metadata key #" + std::to_string(i));
    std::string where = "metadata key '" + str(key) + "'";
    auto type = static_cast<ValueType>(in.read<uint32_t>(where + " type"));
    out.add(key, read_value(in, type, where, 0));
  }
}

uint32_t alignment_of(const Metadata& metadata) {
  const Value* v = metadata.find("general.alignment");
  if (v == nullptr) return kDefaultAlignment;
  if (v->type() != ValueType::U32)
    throw Error("general.alignment must be a uint32, found " + str(value_type_name(v->type())));
  uint64_t a = v->as_uint();
  if (a == 0 || (a & (a - 1)) != 0)
    throw Error("general.alignment must be a power of two, found " + std::to_string(a));
  return static_cast<uint32_t>(a);
}

TensorInfo read_tensor_info(Cursor& in, uint64_t index) {
  TensorInfo t;
  t.name = in.read_string("tensor #" + std::to_string(index) + " name");
  std::string where = "tensor '" + str(t.name) + "'";
  t.n_dims = in.read<uint32_t>(where + " dimension count");
  if (t.n_dims == 0 || t.n_dims > kMaxDims)
    throw Error(where + " has " + std::to_string(t.n_dims) + " dimensions (1 to 4 allowed)");
  for (uint32_t d = 0; d < t.n_dims; ++d) {
    uint64_t n = in.read<uint64_t>(where + " shape");
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw Error(where + " has a negative or absurd dimension " + std::to_string(n));
    t.shape[d] = n;
  }
  uint32_t type_id = in.read<uint32_t>(where + " type");
  const TypeTraits* traits = find_type(type_id);
  if (traits == nullptr)
    throw Error(where + " has unknown tensor type id " + std::to_string(type_id) +
                " (a newer ggml type? ember does not know it)");
  t.type = traits->type;
  t.offset = in.read<uint64_t>(where + " offset");

  // Element count without overflow: every partial product stays below 2^63.
  uint64_t elements = 1;
  for (uint64_t n : t.shape) {
    if (n != 0 && elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / n)
      throw Error(where + " has more elements than fit in 64 bits");
    elements *= n;
  }
  if (t.shape[0] % traits->block_size != 0)
    throw Error(where + " of type " + str(traits->name) + " has rows of " +
                std::to_string(t.shape[0]) + " elements, not a multiple of the block size " +
                std::to_string(traits->block_size));
  t.bytes = elements / traits->block_size * traits->block_bytes;
  return t;
}

void check_tensor_placement(std::vector<TensorInfo>& tensors, uint32_t alignment,
                            uint64_t data_bytes) {
  for (const TensorInfo& t : tensors) {
    std::string where = "tensor '" + str(t.name) + "'";
    if (t.offset % alignment != 0)
      throw Error(where + " data offset " + std::to_string(t.offset) +
                  " is not a multiple of the alignment " + std::to_string(alignment));
    if (t.offset > data_bytes || t.bytes > data_bytes - t.offset)
      throw Error(where + " data (" + std::to_string(t.bytes) + " bytes at offset " +
                  std::to_string(t.offset) + ") lies outside the file, whose data section has " +
                  std::to_string(data_bytes) + " bytes; the file may be truncated");
  }
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorInfo& prev = tensors[order[i - 1]];
    const TensorInfo& next = tensors[order[i]];
    if (prev.offset + prev.bytes > next.offset)
      throw Error("tensors '" + str(prev.name) + "' and '" + str(next.name) + "' overlap");
  }
  std::vector<std::string_view> names;
  names.reserve(tensors.size());
  for (const TensorInfo& t : tensors) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  auto dup = std::adjacent_find(names.begin(), names.end());
  if (dup != names.end()) throw Error("tensor name '" + str(*dup) + "' appears twice");
}

}  // namespace

void Metadata::add(std::string_view key, Value value) {
  if (!index_.emplace(key, entries_.size()).second)
    throw Error("metadata key '" + str(key) + "' appears twice");
  entries_.push_back({key, std::move(value)});
}

const Value* Metadata::find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].value;
}

namespace {
template <class T, class F>
std::optional<T> typed(const Metadata& m, std::string_view key, F get) {
  const Value* v = m.find(key);
  if (v == nullptr) return std::nullopt;
  try {
    return get(*v);
  } catch (const Error& e) {
    throw Error("metadata key '" + str(key) + "': " + e.what());
  }
}
}  // namespace

std::optional<int64_t> Metadata::get_int(std::string_view key) const {
  return typed<int64_t>(*this, key, [](const Value& v) { return v.as_int(); });
}
std::optional<double> Metadata::get_double(std::string_view key) const {
  return typed<double>(*this, key, [](const Value& v) { return v.as_double(); });
}
std::optional<bool> Metadata::get_bool(std::string_view key) const {
  return typed<bool>(*this, key, [](const Value& v) { return v.as_bool(); });
}
std::optional<std::string_view> Metadata::get_string(std::string_view key) const {
  return typed<std::string_view>(*this, key, [](const Value& v) { return v.as_string(); });
}

int64_t Metadata::require_int(std::string_view key) const {
  if (auto v = get_int(key)) return *v;
  throw Error("missing metadata key '" + str(key) + "'");
}

std::string_view Metadata::require_string(std::string_view key) const {
  if (auto v = get_string(key)) return *v;
  throw Error("missing metadata key '" + str(key) + "'");
}

const TensorInfo* Contents::find_tensor(std::string_view name) const {
  for (const TensorInfo& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Contents parse(std::span<const uint8_t> bytes) {
  Cursor in(bytes);
  Contents c;
  uint32_t magic = in.read<uint32_t>("magic");
  if (magic != kMagic) throw Error("not a GGUF file (the first four bytes are not \"GGUF\")");
  c.version = in.read<uint32_t>("version");
  if (c.version == 0x02000000 || c.version == 0x03000000)
    throw Error("big-endian GGUF files are not supported");
  if (c.version == 1)
    throw Error("GGUF version 1 is obsolete; convert the model again with a current tool");
  if (c.version != 2 && c.version != 3)
    throw Error("unsupported GGUF version " + std::to_string(c.version) + " (ember reads 2 and 3)");
  uint64_t tensor_count = in.read<uint64_t>("tensor count");
  uint64_t kv_count = in.read<uint64_t>("metadata count");
  if (kv_count > in.remaining() / kMinKeyValueBytes)
    throw Error("header claims " + std::to_string(kv_count) +
                " metadata entries, more than the file can hold");
  if (tensor_count > in.remaining() / kMinTensorInfoBytes)
    throw Error("header claims " + std::to_string(tensor_count) +
                " tensors, more than the file can hold");

  read_metadata(in, kv_count, c.metadata);
  c.alignment = alignment_of(c.metadata);
  c.tensors.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) c.tensors.push_back(read_tensor_info(in, i));
  c.header_bytes = in.position();

  uint64_t aligned = (c.header_bytes + c.alignment - 1) / c.alignment * c.alignment;
  // A file without tensors (a vocabulary-only file) may end right after its header.
  c.data_offset = std::min<uint64_t>(aligned, bytes.size());
  if (!c.tensors.empty() && aligned > bytes.size())
    throw Error("file is truncated: tensor data would start at offset " + std::to_string(aligned) +
                " but the file has " + std::to_string(bytes.size()) + " bytes");
  check_tensor_placement(c.tensors, c.alignment, bytes.size() - c.data_offset);
  for (TensorInfo& t : c.tensors) {
    t.file_offset = c.data_offset + t.offset;
    t.data = bytes.data() + t.file_offset;
  }
  return c;
}

File File::open(const std::string& path) {
  File f;
  try {
    f.map_ = MappedFile(path);
    f.contents_ = parse(f.map_.bytes());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  return f;
}

}  // namespace gguf
