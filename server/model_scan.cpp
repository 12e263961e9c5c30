#include "server/model_scan.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "gguf/model_files.h"
#include "server/model_registry.h"

namespace ember::server {
namespace fs = std::filesystem;
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_gguf_name(const fs::path& p) {
  return lower(p.extension().string()) == ".gguf";
}

class Scanner {
 public:
  explicit Scanner(ScanReport& report) : report_(report) {}

  void skip(const fs::path& p, const std::string& why) {
    report_.skipped.push_back(p.string() + ": " + why);
  }

  void add(const fs::path& p, const char* source, std::string id = "") {
    report_.files.push_back({p, source, std::move(id)});
  }

  // A source that does not exist yet: watch its nearest existing ancestor for the next
  // directory on the way, so that creating it (mkdir models, a first Ollama pull) is noticed.
  void watch_for_creation(const fs::path& root) {
    std::error_code ec;
    fs::path p = fs::absolute(root, ec).lexically_normal(), child;
    while (!fs::is_directory(p, ec)) {
      if (p == p.parent_path() || p.empty()) return;
      child = p.filename();
      p = p.parent_path();
    }
    if (!child.empty()) report_.watch.push_back({p.string(), child.string()});
  }

  void watch(const fs::path& dir) { report_.watch.push_back({dir.string(), ""}); }

  struct Listing {
    std::vector<fs::path> files, dirs;  // in name order; symlinks followed, dangling ones left out
  };
  // The entries of `dir`. An entry that cannot be examined is left out; a directory that cannot
  // be read (or whose listing breaks off) is reported, and what was read is still returned.
  Listing list(const fs::path& dir) {
    Listing out;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
      skip(dir, "cannot read the directory: " + ec.message());
      return out;
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) {
        skip(dir, "listing stopped: " + ec.message());
        break;
      }
      std::error_code st_ec;
      const fs::file_status st = fs::status(it->path(), st_ec);  // follows symlinks
      if (st_ec) continue;                                       // dangling, or gone meanwhile
      if (fs::is_directory(st))
        out.dirs.push_back(it->path());
      else if (fs::is_regular_file(st))
        out.files.push_back(it->path());
    }
    std::sort(out.files.begin(), out.files.end());
    std::sort(out.dirs.begin(), out.dirs.end());
    return out;
  }

  // Calls `on_file` for the regular files in `dir` and walks sub-directories `depth` levels
  // further. A directory reached twice (a symlink loop, two paths to one place) is listed once.
  // Everything listed is watched.
  void walk(const fs::path& dir, int depth, const std::function<void(const fs::path&)>& on_file) {
    std::error_code ec;
    const fs::path canonical = fs::canonical(dir, ec);
    if (ec) return skip(dir, "cannot resolve: " + ec.message());
    if (!visited_.insert(canonical).second) return;
    watch(dir);
    const Listing l = list(dir);
    for (const fs::path& f : l.files) on_file(f);
    if (depth > 0)
      for (const fs::path& d : l.dirs) walk(d, depth - 1, on_file);
  }

  // A .gguf file as a model: a split set is found through its first part; a later part whose
  // first part is missing is reported like any other incomplete set.
  void add_gguf(const fs::path& p, const char* source) {
    if (!is_gguf_name(p)) return;
    if (auto split = gguf::parse_split_name(p.string()); split && split->index != 1) {
      std::error_code ec;
      const std::string first = gguf::split_path(split->prefix, 1, split->count);
      if (!fs::exists(first, ec) && split->index == 2)  // reported once per set
        skip(first, "missing: the split model " + fs::path(first).filename().string() +
                        " has other parts but not its first (part 1 of " +
                        std::to_string(split->count) + ")");
      return;
    }
    add(p, source);
  }

 private:
  ScanReport& report_;
  std::set<fs::path> visited_;
};

// Models directories: files, and sub-directories two levels down (models/ORG/REPO/FILE).
void scan_dir(Scanner& s, const std::string& dir) {
  std::error_code ec;
  if (dir.empty()) return;
  if (!fs::is_directory(dir, ec)) return s.watch_for_creation(dir);
  s.walk(dir, 2, [&](const fs::path& p) { s.add_gguf(p, "dir"); });
}

// Hugging Face cache: hub/models--ORG--NAME/{refs/main, snapshots/REV/...}. Only the snapshot
// refs/main names is current (older revisions stay in the cache after an update); a snapshot
// entry is a symlink into blobs/, and one still pointing at a `.incomplete` blob (or nowhere)
// is a download in progress. `.no_exist/` (the hub's negative cache) is never looked at.
void scan_hf_cache(Scanner& s, const std::string& hub) {
  std::error_code ec;
  if (hub.empty()) return;
  if (!fs::is_directory(hub, ec)) return s.watch_for_creation(hub);
  s.watch(hub);
  for (const fs::path& repo : s.list(hub).dirs) {
    if (repo.filename().string().rfind("models--", 0) != 0) continue;
    const fs::path snapshots = repo / "snapshots";
    for (const fs::path& d : {repo, repo / "refs", snapshots})
      if (fs::is_directory(d, ec)) s.watch(d);
    std::string revision;
    if (std::ifstream ref(repo / "refs" / "main"); ref) ref >> revision;
    if (revision.empty()) {  // no refs/main: unambiguous only with a single snapshot
      const std::vector<fs::path> all = s.list(snapshots).dirs;
      if (all.empty()) continue;
      if (all.size() > 1) {
        s.skip(repo, std::to_string(all.size()) +
                         " snapshots and no refs/main: which revision is current is unknown");
        continue;
      }
      revision = all.front().filename().string();
    }
    const fs::path snapshot = snapshots / revision;
    if (!fs::is_directory(snapshot, ec)) {
      s.skip(repo, "refs/main names " + revision + ", which has no snapshot");
      continue;
    }
    s.walk(snapshot, 3, [&](const fs::path& p) {
      std::error_code e;
      if (fs::canonical(p, e).extension() == ".incomplete") return;
      s.add_gguf(p, "hf-cache");
    });
  }
}

// Ollama: manifests/HOST/NAMESPACE/NAME/TAG is JSON whose layer of media type
// application/vnd.ollama.image.model names blobs/sha256-HEX (older stores: sha256:HEX). The id
// is what `ollama list` shows: NAME:TAG for the default registry's "library", NAMESPACE/NAME:TAG
// for its other namespaces, HOST/NAMESPACE/NAME:TAG for other hosts (hf.co/ORG/REPO:TAG).
void scan_ollama(Scanner& s, const std::string& root) {
  std::error_code ec;
  if (root.empty()) return;
  if (!fs::is_directory(root, ec)) return s.watch_for_creation(root);
  const fs::path manifests = fs::path(root) / "manifests";
  s.watch(root);  // so that manifests/ appearing is seen
  if (!fs::is_directory(manifests, ec)) return;
  s.walk(manifests, 3, [&](const fs::path& p) {
    std::vector<std::string> parts;
    for (const auto& part : fs::relative(p, manifests, ec)) parts.push_back(part.string());
    if (parts.size() != 4) return;
    const std::string &host = parts[0], &ns = parts[1], &name = parts[2], &tag = parts[3];
    const std::string id = lower(
        (host == "registry.ollama.ai" ? (ns == "library" ? "" : ns + "/") : host + "/" + ns + "/") +
        name + ":" + tag);
    std::string digest;
    try {
      std::ifstream in(p);
      const auto manifest = nlohmann::json::parse(in);
      for (const auto& layer : manifest.at("layers"))
        if (layer.value("mediaType", "") == "application/vnd.ollama.image.model")
          digest = layer.at("digest").get<std::string>();
    } catch (const std::exception& e) {
      return s.skip(p, "not an Ollama manifest (" + std::string(e.what()) + ")");
    }
    if (digest.empty()) return;  // not a model (an adapter, a projector only, ...)
    if (digest.rfind("sha256:", 0) != 0 || digest.size() != 71 ||
        digest.find_first_not_of("0123456789abcdef", 7) != std::string::npos)
      return s.skip(p, "model " + id + ": unexpected digest '" + digest + "'");
    const std::string hex = digest.substr(7);
    for (const char* prefix : {"sha256-", "sha256:"}) {
      const fs::path blob = fs::path(root) / "blobs" / (prefix + hex);
      if (fs::is_regular_file(blob, ec)) return s.add(blob, "ollama", id);
    }
    s.skip(p, "model " + id + ": its blob sha256-" + hex + " is missing from blobs/");
  });
}

}  // namespace

ScanReport scan_sources(const RegistrySources& sources) {
  ScanReport report;
  Scanner s(report);
  std::error_code ec;
  for (const std::string& f : sources.files) {
    if (f.empty()) continue;
    if (fs::is_regular_file(f, ec))
      s.add(f, "file");
    else
      s.skip(f, "no such model file");
    const fs::path parent = fs::absolute(f, ec).parent_path();
    if (fs::is_directory(parent, ec))
      report.watch.push_back({parent.string(), fs::path(f).filename().string()});
  }
  for (const std::string& d : sources.dirs) scan_dir(s, d);
  scan_hf_cache(s, sources.hf_hub);
  scan_ollama(s, sources.ollama);
  return report;
}

}  // namespace ember::server
