// The models ember can serve: GGUF files found in the model directories (./models,
// --model-dirs / EMBER_MODEL_DIRS), single files (EMBER_BASE_GGUF, --model), the Hugging Face
// cache (models--ORG--NAME/snapshots/REV/FILE.gguf) and Ollama's store (manifests naming a
// model layer, stored as blobs/sha256-…; id NAME:TAG), each under an
// id derived from its file name (SPEC.md): "tinyllama-1.1b-chat-v1.0.Q2_K.gguf" →
// "tinyllama-1.1b-chat-v1.0.q2-k", with "tinyllama-1.1b-chat-v1.0" as an alias while no other
// file claims it. Only files whose GGUF header parses count; a split set is one model.
// Thread-safe: the scheduler resolves ids while the HTTP side lists them.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/model_scan.h"

namespace ember::server {

struct ModelEntry {
  std::string id;
  std::string alias;        // empty when there is none
  std::string path;         // the file (the first part of a split set)
  std::string arch;         // general.architecture
  std::string quant;        // e.g. "Q4_K_M", from general.file_type or the tensor types
  uint64_t size_bytes = 0;  // all parts
  int64_t modified = 0;     // seconds since the epoch
  int parts = 1;
  std::string source;                   // "dir", "file", "hf-cache" or "ollama"
  std::vector<std::string> part_paths;  // every file of the model (one unless split)
};

// Where to look. Empty directories are skipped.
struct RegistrySources {
  std::vector<std::string> dirs;   // scanned to depth 2
  std::vector<std::string> files;  // single model files
  std::string hf_hub;              // $HF_HOME/hub or ~/.cache/huggingface/hub
  std::string ollama;              // ~/.ollama/models (or $OLLAMA_MODELS)

  // The defaults from the environment: ./models, EMBER_MODEL_DIRS / SHIMMY_MODEL_DIRS /
  // SHIMMY_MODEL_PATHS, EMBER_BASE_GGUF / SHIMMY_BASE_GGUF, HF_HUB_CACHE / HF_HOME, OLLAMA_MODELS.
  static RegistrySources from_environment();
  // ./models plus the directories of a colon-separated list (what --model-dirs and the
  // *_MODEL_DIRS variables hold).
  void set_dirs(const std::string& colon_separated);
};

// The id of a model file (without directories): lower-cased, '_' → '-', no ".gguf", no split
// suffix. Exposed for tests.
std::string model_id_for(const std::string& file_name);
// The id without its quantisation suffix ("smollm2-135m-instruct.q4-1" → "smollm2-135m-instruct"),
// or empty when there is none.
std::string alias_for(const std::string& id);

class ModelRegistry {
 public:
  explicit ModelRegistry(RegistrySources sources);

  // Scans again; returns the number of models found. What cannot be read or is incomplete is
  // skipped and reported (skipped(), and on stderr when it changes): a bad file or an
  // unreadable directory never hides the others or stops the server. A single file whose size
  // and modification time are unchanged since the last scan is not parsed again.
  size_t rescan();
  std::vector<ModelEntry> list() const;
  // By id or alias, case-insensitive; NAME and NAME:latest are one name (Ollama), and a file's
  // own name or stem finds its model.
  std::optional<ModelEntry> find(const std::string& name) const;
  // For a name that is a GGUF file but not a model (a vision projector, `mmproj-*.gguf`): why it
  // cannot be served; empty otherwise.
  std::string not_a_model(const std::string& name) const;
  // The id of the model whose file is `path` (same file, however named), or empty.
  std::string id_for_path(const std::string& path) const;
  // "PATH: why" for each file or directory the last scan skipped.
  std::vector<std::string> skipped() const;
  // The directories whose changes can change the next scan (for the directory watcher), and a
  // counter that moves with every scan.
  std::vector<WatchDir> watch_dirs() const;
  uint64_t generation() const;
  const RegistrySources& sources() const { return sources_; }

 private:
  RegistrySources sources_;
  mutable std::mutex mutex_;  // guards the results below
  std::vector<ModelEntry> models_;
  std::vector<ModelEntry> projectors_;  // GGUF files that are not models (architecture clip)
  std::vector<std::string> skipped_;
  std::vector<WatchDir> watch_;
  uint64_t generation_ = 0;
  // What earlier scans found per single file (not split sets, whose other parts may change),
  // by path, source and id with its size and modification time; nullopt for files that did not
  // parse (with the reason).
  struct Probed {
    uint64_t size = 0;
    int64_t mtime = 0;
    std::optional<ModelEntry> entry;
    std::string error;
  };
  std::mutex scan_mutex_;  // one rescan at a time; guards probed_
  std::map<std::string, Probed> probed_;
};

}  // namespace ember::server
