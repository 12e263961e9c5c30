#include "gguf/model_files.h"

#include <cstdio>
#include <regex>
#include <unordered_set>

#include "gguf/error.h"

namespace gguf {

std::optional<SplitName> parse_split_name(const std::string& path) {
  static const std::regex pattern(R"((.*)-(\d{5})-of-(\d{5})\.gguf)", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(path, m, pattern)) return std::nullopt;
  SplitName s{m[1].str(), std::stoi(m[2].str()), std::stoi(m[3].str())};
  if (s.count < 1 || s.index < 1 || s.index > s.count) return std::nullopt;
  return s;
}

std::string split_path(const std::string& prefix, int index, int count) {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "-%05d-of-%05d.gguf", index, count);
  return prefix + suffix;
}

ModelFiles ModelFiles::open(const std::string& path) {
  ModelFiles m;
  File first = File::open(path);
  int64_t declared = first.metadata().get_int("split.count").value_or(1);
  std::optional<SplitName> name = parse_split_name(path);
  if (declared <= 1 && !(name && name->count > 1)) {
    m.parts_.push_back(std::move(first));
  } else {
    if (!name)
      throw Error(path + ": is part of a split model (split.count = " + std::to_string(declared) +
                  ") but its name does not follow NAME-00001-of-0000N.gguf, so the other parts "
                  "cannot be found");
    if (declared != name->count)
      throw Error(path + ": split.count is " + std::to_string(declared) +
                  " but the file name says " + std::to_string(name->count) + " parts");
    for (int i = 1; i <= name->count; ++i) {
      if (i == name->index) {
        m.parts_.push_back(std::move(first));
        continue;
      }
      m.parts_.push_back(File::open(split_path(name->prefix, i, name->count)));
    }
    for (int i = 0; i < name->count; ++i) {
      const File& part = m.parts_[i];
      int64_t no = part.metadata().get_int("split.no").value_or(-1);
      if (no != i)
        throw Error(part.path() + ": split.no is " + std::to_string(no) + ", expected " +
                    std::to_string(i));
    }
  }
  std::unordered_set<std::string_view> names;
  for (size_t p = 0; p < m.parts_.size(); ++p) {
    for (TensorInfo t : m.parts_[p].tensors()) {
      if (!names.insert(t.name).second)
        throw Error(m.parts_[p].path() + ": tensor '" + std::string(t.name) +
                    "' is also in an earlier part");
      t.split = static_cast<uint32_t>(p);
      m.tensors_.push_back(t);
    }
  }
  if (auto expected = m.metadata().get_int("split.tensors.count");
      expected && m.parts_.size() > 1 && *expected != static_cast<int64_t>(m.tensors_.size()))
    throw Error(path + ": the split model declares " + std::to_string(*expected) +
                " tensors but its parts hold " + std::to_string(m.tensors_.size()));
  return m;
}

const TensorInfo* ModelFiles::find_tensor(std::string_view name) const {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

uint64_t ModelFiles::total_file_bytes() const {
  uint64_t n = 0;
  for (const File& f : parts_) n += f.size();
  return n;
}

uint64_t ModelFiles::total_tensor_bytes() const {
  uint64_t n = 0;
  for (const TensorInfo& t : tensors_) n += t.bytes;
  return n;
}

}  // namespace gguf
