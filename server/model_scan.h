// What is on disk: the model files of every source the registry searches, before any is opened.
// Models directories (files, and sub-directories to ORG/REPO depth, directory symlinks followed
// with loops cut), single files, the Hugging Face cache (the snapshot `refs/main` names) and
// Ollama's store (manifests naming a model blob). Nothing unreadable hides the rest: it is
// skipped and reported. The scan also says which directories to watch for changes.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace ember::server {

struct RegistrySources;

// A model file found on disk.
struct FoundFile {
  std::filesystem::path path;  // the file (the first part of a split set)
  std::string source;          // "dir", "file", "hf-cache" or "ollama"
  std::string id;              // a fixed id (Ollama's NAME:TAG), or empty: from the file name
};

// A directory whose changes can change what a scan finds. `only_child` is set for the nearest
// existing ancestor of a source that does not exist yet: only the creation of that child
// matters there (so a store created after start is seen without watching all of $HOME).
struct WatchDir {
  std::string path;
  std::string only_child;
  bool operator==(const WatchDir&) const = default;
};

struct ScanReport {
  std::vector<FoundFile> files;
  std::vector<std::string> skipped;  // "PATH: why", for what could not be read or is incomplete
  std::vector<WatchDir> watch;
};

// Scans every source. Never throws for what is on disk.
ScanReport scan_sources(const RegistrySources& sources);

}  // namespace ember::server
