// One model as GGUF stores it: a single file, or a split set `NAME-00001-of-00003.gguf`, ...
// read as one. The first part holds the model's metadata; every part holds some tensors and
// `split.no` (0-based), `split.count` and, in the first, `split.tensors.count`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "gguf/reader.h"

namespace gguf {

// The parts of a split file name: "dir/NAME-00002-of-00003.gguf" → {"dir/NAME", 2, 3}.
struct SplitName {
  std::string prefix;
  int index = 0;  // 1-based, as in the file name
  int count = 0;
};
std::optional<SplitName> parse_split_name(const std::string& path);
std::string split_path(const std::string& prefix, int index, int count);

class ModelFiles {
 public:
  // Opens `path`; when it is one part of a split set, opens all parts. Throws gguf::Error.
  static ModelFiles open(const std::string& path);

  const Metadata& metadata() const { return parts_.front().metadata(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  const std::vector<File>& parts() const { return parts_; }
  uint64_t total_file_bytes() const;
  uint64_t total_tensor_bytes() const;

 private:
  std::vector<File> parts_;
  std::vector<TensorInfo> tensors_;  // all parts' tensors; TensorInfo::split says which part
};

}  // namespace gguf
