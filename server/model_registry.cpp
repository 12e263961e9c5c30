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

std::optional<ModelEntry> probe(const fs::path& path, const std::string& source,
                                std::string id = "") {
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

// Hugging Face cache: hub/models--ORG--NAME/snapshots/REV/FILE.gguf (FILE may sit in
// sub-folders of the repo; the snapshot entries are symlinks into blobs/).
void scan_hf_cache(const std::string& hub, const std::function<void(const fs::path&)>& add) {
  std::error_code ec;
  if (hub.empty() || !fs::is_directory(hub, ec)) return;
  for (const auto& repo : fs::directory_iterator(hub, ec)) {
    if (repo.path().filename().string().rfind("models--", 0) != 0) continue;
    const fs::path snapshots = repo.path() / "snapshots";
    if (!fs::is_directory(snapshots, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(snapshots, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it.depth() >= 3) it.disable_recursion_pending();
      const fs::path& p = it->path();
      if (is_gguf_name(p) && !is_later_split_part(p) && fs::is_regular_file(p, ec)) add(p);
    }
  }
}

// Ollama: manifests/HOST/NAMESPACE/NAME/TAG is JSON whose layer of media type
// application/vnd.ollama.image.model names blobs/sha256-HEX. Id NAME:TAG (NAMESPACE/NAME:TAG
// outside the default "library" namespace).
void scan_ollama(const std::string& root,
                 const std::function<void(const fs::path&, const std::string&)>& add) {
  std::error_code ec;
  const fs::path manifests = fs::path(root) / "manifests";
  if (root.empty() || !fs::is_directory(manifests, ec)) return;
  for (auto it = fs::recursive_directory_iterator(manifests, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const fs::path rel = fs::relative(it->path(), manifests, ec);
    std::vector<std::string> parts;
    for (const auto& part : rel) parts.push_back(part.string());
    if (parts.size() < 3) continue;
    const std::string tag = parts.back(), name = parts[parts.size() - 2],
                      ns = parts.size() >= 4 ? parts[parts.size() - 3] : "library";
    std::ifstream in(it->path());
    std::stringstream text;
    text << in.rdbuf();
    const std::string manifest = text.str();
    // The digest of the model layer, found without a JSON library: each layer object holds
    // "mediaType" and "digest"; take the digest nearest after the model media type.
    const size_t media = manifest.find("application/vnd.ollama.image.model");
    if (media == std::string::npos) continue;
    const size_t object_start = manifest.rfind('{', media);
    const size_t object_end = manifest.find('}', media);
    if (object_start == std::string::npos || object_end == std::string::npos) continue;
    const std::string layer = manifest.substr(object_start, object_end - object_start);
    static const std::regex digest_re("\"digest\"\\s*:\\s*\"sha256:([0-9a-f]{64})\"");
    std::smatch m;
    if (!std::regex_search(layer, m, digest_re)) continue;
    const fs::path blob = fs::path(root) / "blobs" / ("sha256-" + m[1].str());
    if (!fs::is_regular_file(blob, ec)) continue;
    std::string id = (ns == "library" ? "" : ns + "/") + name + ":" + tag;
    for (char& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    add(blob, id);
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
  std::vector<ModelEntry> found;
  std::vector<std::string> seen_paths;
  std::map<std::string, Probed> probed;
  auto add = [&](const fs::path& p, const std::string& source, const std::string& id = "") {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(p, ec);
    const std::string key = (ec ? p : canonical).string();
    if (std::find(seen_paths.begin(), seen_paths.end(), key) != seen_paths.end()) return;
    seen_paths.push_back(key);
    Probed now;
    now.size = fs::file_size(p, ec);
    now.mtime = ec ? 0 : fs::last_write_time(p, ec).time_since_epoch().count();
    auto cached = probed_.find(key + "\n" + source + "\n" + id);
    if (cached != probed_.end() && cached->second.size == now.size &&
        cached->second.mtime == now.mtime) {
      now.entry = cached->second.entry;
    } else {
      now.entry = probe(p, source, id);
    }
    if (now.entry) found.push_back(*now.entry);
    if (!is_later_split_part(p) && !std::regex_search(p.stem().string(), split_suffix()))
      probed[key + "\n" + source + "\n" + id] = std::move(now);
  };
  for (const std::string& f : sources_.files)
    if (!f.empty()) add(f, "file");
  for (const std::string& d : sources_.dirs) {
    std::error_code ec;
    if (d.empty() || !fs::is_directory(d, ec)) continue;
    // Model directories hold files directly or one level of sub-directories (one per repo).
    for (auto it =
             fs::recursive_directory_iterator(d, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it.depth() >= 2) it.disable_recursion_pending();
      const fs::path& p = it->path();
      if (!it->is_regular_file(ec) || !is_gguf_name(p) || is_later_split_part(p)) continue;
      add(p, "dir");
    }
  }
  scan_hf_cache(sources_.hf_hub, [&](const fs::path& p) { add(p, "hf-cache"); });
  scan_ollama(sources_.ollama,
              [&](const fs::path& p, const std::string& id) { add(p, "ollama", id); });
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

}  // namespace ember::server

namespace ember::server {

std::string ModelRegistry::id_for_path(const std::string& path) const {
  std::error_code ec;
  const auto want = fs::weakly_canonical(path, ec);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const ModelEntry& e : models_)
    if (fs::weakly_canonical(e.path, ec) == want) return e.id;
  return "";
}

}  // namespace ember::server
