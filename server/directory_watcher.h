// Rescans the registry when a models directory changes (inotify): a file copied, pulled,
// renamed or deleted there is servable or gone within a fraction of a second, no restart.
// Events are coalesced: one rescan per quiet 200 ms.
#pragma once

#include <chrono>
#include <map>
#include <string>

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
  void watch_tree(const std::string& dir, int depth);
  void on_events();

  http::EventLoop& loop_;
  ModelRegistry& registry_;
  int fd_ = -1;
  std::map<int, std::string> watched_;  // watch descriptor → directory
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_event_;
};

}  // namespace ember::server
