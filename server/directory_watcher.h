// Rescans the registry when something it scans changes (inotify): a file copied, pulled,
// renamed or deleted in a models directory (or its ORG/REPO sub-directories), a new snapshot or
// refs/main in the Hugging Face cache, a new manifest in Ollama's store, or a source that did
// not exist at start being created. What is watched is exactly what the last scan listed
// (ModelRegistry::watch_dirs), re-synchronised after every scan, whoever triggered it.
// Events are coalesced: one rescan per quiet 200 ms. Network filesystems do not report writes
// made on other machines; `POST /api/models/discover` rescans on request.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "server/http/event_loop.h"
#include "server/model_registry.h"

namespace ember::server {

class DirectoryWatcher {
 public:
  DirectoryWatcher(http::EventLoop& loop, ModelRegistry& registry);
  ~DirectoryWatcher();
  DirectoryWatcher(const DirectoryWatcher&) = delete;
  DirectoryWatcher& operator=(const DirectoryWatcher&) = delete;

 private:
  void sync();  // watches what the registry's last scan listed, and nothing else
  void on_events();

  http::EventLoop& loop_;
  ModelRegistry& registry_;
  int fd_ = -1;
  // A watched directory: in full, or only for the creation of some children (the next step
  // towards sources that do not exist yet).
  struct Watched {
    std::string path;
    bool full = false;
    std::set<std::string> children;
  };
  std::map<int, Watched> watched_;  // by watch descriptor
  bool warned_ = false;             // a watch could not be added (said once)
  uint64_t synced_generation_ = ~uint64_t{0};
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_event_;
};

// Rescans the registry every `interval` (--rescan-interval) on a thread of its own, so that a
// slow network volume never blocks the event loop: the backstop for what inotify cannot see
// (files written or deleted by other hosts sharing the volume). Stops and joins when destroyed.
class PeriodicRescan {
 public:
  PeriodicRescan(ModelRegistry& registry, std::chrono::seconds interval);
  ~PeriodicRescan();
  PeriodicRescan(const PeriodicRescan&) = delete;
  PeriodicRescan& operator=(const PeriodicRescan&) = delete;

 private:
  ModelRegistry& registry_;
  std::chrono::seconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ember::server
