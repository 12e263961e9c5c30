#include "server/model_registry.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string_view>

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

// Opens a found file and describes it; nullopt (and `error`) when it does not parse.
std::optional<ModelEntry> probe(const fs::path& path, const std::string& source,
                                const std::string& id, std::string& error) {
  try {
    gguf::ModelFiles files = gguf::ModelFiles::open(path.string());
    ModelEntry e;
    e.path = path.string();
    e.source = source;
    e.id = id.empty() ? model_id_for(path.filename().string()) : id;
    e.alias = id.empty() ? alias_for(e.id) : "";
    e.arch = std::string(files.metadata().get_string("general.architecture").value_or(""));
    if (auto ft = files.metadata().get_int("general.file_type")) e.quant = file_type_name(*ft);
    if (e.quant.empty()) {  // the type of the largest tensor
      uint64_t best = 0;
      for (const auto& t : files.tensors())
        if (t.bytes > best) best = t.bytes, e.quant = std::string(gguf::type_name(t.type));
    }
    e.size_bytes = files.total_file_bytes();
    e.parts = static_cast<int>(files.parts().size());
    for (const gguf::File& part : files.parts()) e.part_paths.push_back(part.path());
    std::error_code ec;
    auto mtime = fs::last_write_time(path, ec);
    if (!ec)
      e.modified = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::file_clock::to_sys(mtime).time_since_epoch())
                       .count();
    return e;
  } catch (const std::exception& err) {
    error = err.what();
    return std::nullopt;
  }
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

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v && *v) return std::string(v);
  return std::nullopt;
}

RegistrySources RegistrySources::from_environment() {
  RegistrySources s;
  s.set_dirs("");
  for (const char* var : {"EMBER_MODEL_DIRS", "SHIMMY_MODEL_DIRS", "SHIMMY_MODEL_PATHS"})
    if (auto v = env(var)) {
      s.set_dirs(*v);
      break;
    }
  for (const char* var : {"EMBER_BASE_GGUF", "SHIMMY_BASE_GGUF"})
    if (auto v = env(var)) {
      s.files.push_back(*v);
      break;
    }
  const std::string home = env("HOME").value_or("");
  if (auto v = env("HF_HUB_CACHE"))
    s.hf_hub = *v;
  else if (auto h = env("HF_HOME"))
    s.hf_hub = *h + "/hub";
  else if (!home.empty())
    s.hf_hub = home + "/.cache/huggingface/hub";
  if (auto v = env("OLLAMA_MODELS"))
    s.ollama = *v;
  else if (!home.empty())
    s.ollama = home + "/.ollama/models";
  return s;
}

void RegistrySources::set_dirs(const std::string& colon_separated) {
  dirs = {"./models"};
  std::stringstream in(colon_separated);
  for (std::string d; std::getline(in, d, ':');)
    if (!d.empty()) dirs.push_back(d);
}

ModelRegistry::ModelRegistry(RegistrySources sources) : sources_(std::move(sources)) {}

size_t ModelRegistry::rescan() {
  std::lock_guard<std::mutex> scanning(scan_mutex_);
  ScanReport report = scan_sources(sources_);
  std::vector<ModelEntry> found, projectors;
  std::set<std::string> seen;  // canonical path + id: one file is one model per name
  std::map<std::string, Probed> probed;
  for (const FoundFile& f : report.files) {
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(f.path, ec);
    const std::string id = f.id.empty() ? model_id_for(f.path.filename().string()) : f.id;
    const std::string key = (ec ? f.path : canonical).string() + "\n" + f.source + "\n" + id;
    if (!seen.insert((ec ? f.path : canonical).string() + "\n" + id).second) continue;
    Probed now;
    now.size = fs::file_size(f.path, ec);
    now.mtime = ec ? 0 : fs::last_write_time(f.path, ec).time_since_epoch().count();
    auto cached = probed_.find(key);
    if (cached != probed_.end() && cached->second.size == now.size &&
        cached->second.mtime == now.mtime) {
      now.entry = cached->second.entry;
      now.error = cached->second.error;
    } else {
      now.entry = probe(f.path, f.source, f.id, now.error);
    }
    if (!now.entry)
      report.skipped.push_back(f.path.string() + ": " + now.error);
    else if (now.entry->arch == "clip")  // a vision projector belongs to a model, it is none
      projectors.push_back(*now.entry);
    else
      found.push_back(*now.entry);
    if (!gguf::parse_split_name(f.path.string())) probed[key] = std::move(now);
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
  probed_ = std::move(probed);  // files no longer there are forgotten
  std::lock_guard<std::mutex> lock(mutex_);
  if (report.skipped != skipped_)
    for (const std::string& why : report.skipped) std::fprintf(stderr, "skipped %s\n", why.c_str());
  models_ = std::move(found);
  projectors_ = std::move(projectors);
  skipped_ = std::move(report.skipped);
  watch_ = std::move(report.watch);
  ++generation_;
  return models_.size();
}

std::vector<ModelEntry> ModelRegistry::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return models_;
}

std::optional<ModelEntry> ModelRegistry::find(const std::string& name) const {
  std::string key = name;
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // The names a user may mean, in order: the name itself; Ollama's NAME and NAME:latest as one
  // (whichever of the two is listed); a file's own name or stem ("SmolLM2-135M-Instruct.Q4_1").
  std::vector<std::string> keys = {key};
  constexpr std::string_view kLatest = ":latest";
  if (key.size() > kLatest.size() && key.ends_with(kLatest))
    keys.push_back(key.substr(0, key.size() - kLatest.size()));
  else if (key.find(':') == std::string::npos)
    keys.push_back(key + std::string(kLatest));
  if (name.find('/') == std::string::npos) keys.push_back(model_id_for(name));
  std::lock_guard<std::mutex> lock(mutex_);
  for (const std::string& k : keys) {
    for (const ModelEntry& e : models_)
      if (e.id == k) return e;
    for (const ModelEntry& e : models_)
      if (!e.alias.empty() && e.alias == k) return e;
  }
  return std::nullopt;
}

std::string ModelRegistry::not_a_model(const std::string& name) const {
  std::string key = name;
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string as_file = model_id_for(name);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const ModelEntry& p : projectors_)
    if (p.id == key || p.id == as_file)
      return "'" + name + "' (" + p.path +
             ") is a vision projector (architecture clip), not a model: it belongs with the "
             "language model it was made for, and ember serves no vision models yet";
  return "";
}

std::vector<std::string> ModelRegistry::skipped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_;
}

std::vector<WatchDir> ModelRegistry::watch_dirs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return watch_;
}

uint64_t ModelRegistry::generation() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return generation_;
}

std::string ModelRegistry::id_for_path(const std::string& path) const {
  std::error_code ec;
  const auto want = fs::weakly_canonical(path, ec);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const ModelEntry& e : models_)
    if (fs::weakly_canonical(e.path, ec) == want) return e.id;
  return "";
}

}  // namespace ember::server
