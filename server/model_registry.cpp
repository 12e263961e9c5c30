#include "server/model_registry.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>

#include "gguf/model_files.h"
#include "gguf/types.h"

namespace ember::server {
namespace fs = std::filesystem;
namespace {

const std::regex& split_suffix() {
  static const std::regex r("-(\\d{5})-of-(\\d{5})$", std::regex::icase);
  return r;
}

// llama.cpp's general.file_type values (LLAMA_FTYPE_*), as names.
std::string file_type_name(int64_t t) {
  static const std::map<int64_t, const char*> kNames = {
      {0, "F32"},      {1, "F16"},      {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},
      {8, "Q5_0"},     {9, "Q5_1"},     {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
      {13, "Q3_K_L"},  {14, "Q4_K_S"},  {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
      {18, "Q6_K"},    {19, "IQ2_XXS"}, {20, "IQ2_XS"}, {21, "Q2_K_S"}, {22, "IQ3_XS"},
      {23, "IQ3_XXS"}, {24, "IQ1_S"},   {25, "IQ4_NL"}, {26, "IQ3_S"},  {27, "IQ3_M"},
      {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"}, {31, "IQ1_M"},  {32, "BF16"}};
  auto it = kNames.find(t);
  return it == kNames.end() ? "" : it->second;
}

std::optional<ModelEntry> probe(const fs::path& path) {
  try {
    gguf::ModelFiles files = gguf::ModelFiles::open(path.string());
    ModelEntry e;
    e.path = path.string();
    e.id = model_id_for(path.filename().string());
    e.alias = alias_for(e.id);
    e.arch = std::string(files.metadata().get_string("general.architecture").value_or(""));
    if (auto ft = files.metadata().get_int("general.file_type")) e.quant = file_type_name(*ft);
    if (e.quant.empty()) {  // the type of the largest tensor
      uint64_t best = 0;
      for (const auto& t : files.tensors())
        if (t.bytes > best) best = t.bytes, e.quant = std::string(gguf::type_name(t.type));
    }
    e.size_bytes = files.total_file_bytes();
    e.parts = static_cast<int>(files.parts().size());
    std::error_code ec;
    auto mtime = fs::last_write_time(path, ec);
    if (!ec)
      e.modified = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::file_clock::to_sys(mtime).time_since_epoch())
                       .count();
    return e;
  } catch (const std::exception& err) {
    std::fprintf(stderr, "skipping %s: %s\n", path.c_str(), err.what());
    return std::nullopt;
  }
}

bool is_gguf_name(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".gguf";
}

// The parts after the first of a split set are not models of their own.
bool is_later_split_part(const fs::path& p) {
  std::smatch m;
  const std::string stem = p.stem().string();
  return std::regex_search(stem, m, split_suffix()) && m[1].str() != "00001";
}

}  // namespace

std::string model_id_for(const std::string& file_name) {
  std::string id = file_name;
  if (id.size() > 5) {
    std::string ext = id.substr(id.size() - 5);
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext == ".gguf") id.resize(id.size() - 5);
  }
  id = std::regex_replace(id, split_suffix(), "");
  for (char& c : id) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c == '_') c = '-';
  }
  return id;
}

std::string alias_for(const std::string& id) {
  // A quantisation name after the last '.' or '-' separated part: q4-k-m, q8-0, iq4-xs, f16,
  // bf16, q4-0-4-4, ...
  static const std::regex quant("[.-](i?q[1-8](-[0-9a-z]{1,2})*|f16|f32|bf16|fp16)$");
  std::smatch m;
  if (!std::regex_search(id, m, quant)) return "";
  std::string alias = id.substr(0, static_cast<size_t>(m.position(0)));
  return alias.empty() ? "" : alias;
}

ModelRegistry::ModelRegistry(std::vector<std::string> dirs, std::vector<std::string> files)
    : dirs_(std::move(dirs)), files_(std::move(files)) {}

size_t ModelRegistry::rescan() {
  std::vector<ModelEntry> found;
  std::vector<std::string> seen_paths;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(p, ec);
    const std::string key = (ec ? p : canonical).string();
    if (std::find(seen_paths.begin(), seen_paths.end(), key) != seen_paths.end()) return;
    seen_paths.push_back(key);
    if (auto e = probe(p)) found.push_back(std::move(*e));
  };
  for (const std::string& f : files_)
    if (!f.empty()) add(f);
  for (const std::string& d : dirs_) {
    std::error_code ec;
    if (d.empty() || !fs::is_directory(d, ec)) continue;
    // Model directories hold files directly or one level of sub-directories (one per repo).
    for (auto it =
             fs::recursive_directory_iterator(d, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it.depth() >= 2) it.disable_recursion_pending();
      const fs::path& p = it->path();
      if (!it->is_regular_file(ec) || !is_gguf_name(p) || is_later_split_part(p)) continue;
      add(p);
    }
  }
  // Ids must be unique: a later duplicate gets a numbered id.
  std::map<std::string, int> ids;
  for (ModelEntry& e : found) {
    if (ids[e.id]++ > 0) e.id += "-" + std::to_string(ids[e.id]);
  }
  // An alias counts only when unambiguous and not another model's id.
  std::map<std::string, int> alias_count;
  for (const ModelEntry& e : found)
    if (!e.alias.empty()) alias_count[e.alias]++;
  for (ModelEntry& e : found)
    if (!e.alias.empty() && (alias_count[e.alias] > 1 || ids.count(e.alias))) e.alias.clear();
  std::sort(found.begin(), found.end(),
            [](const ModelEntry& a, const ModelEntry& b) { return a.id < b.id; });
  std::lock_guard<std::mutex> lock(mutex_);
  models_ = std::move(found);
  return models_.size();
}

std::vector<ModelEntry> ModelRegistry::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return models_;
}

std::optional<ModelEntry> ModelRegistry::find(const std::string& name) const {
  std::string key = name;
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::lock_guard<std::mutex> lock(mutex_);
  for (const ModelEntry& e : models_)
    if (e.id == key) return e;
  for (const ModelEntry& e : models_)
    if (!e.alias.empty() && e.alias == key) return e;
  return std::nullopt;
}

}  // namespace ember::server
