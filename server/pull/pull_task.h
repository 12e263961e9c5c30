// The state of one pull, shared by pull_manager.cpp (coordination) and pull_run.cpp (its steps).
// Private to server/pull/.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "server/pull/destination.h"
#include "server/pull/pull_manager.h"

namespace ember::pull {

struct PullManager::Task {
  struct Follower {
    Listener listener;
    Gone gone;  // may be empty: never gone (the CLI)
  };

  PullRequest request;  // as asked
  // Fields below marked (m) are guarded by the manager's mutex.
  std::vector<Follower> followers;    // (m) who gets the lines
  std::string id;                     // (m) the file name in the models directory, once chosen
  std::vector<std::string> files;     // (m) the repo files (a split set's parts in order)
  std::string key;                    // (m) in by_target_ while this task is the writer
  std::string status = "starting";    // (m)
  uint64_t completed = 0, total = 0;  // (m)
  Clock::time_point progress_at = Clock::now();  // (m) last bytes received (or the download began)
  bool joined = false;                           // (m) its followers moved to another task
  bool finished = false;                         // (m)
  std::string cancel_reason;                     // (m) set just before `cancel`
  std::atomic<bool> cancel{false};
  const DestinationLock* lock = nullptr;  // (m) while held: a lost lock stops the download
  std::vector<std::string> part_paths;    // (m) where the download goes, for the final message
};

// One file of a pull (a split set has several).
struct PullManager::Part {
  std::string repo_file;  // path in the repo
  FileInfo info;          // size and sha256 the hub reports
  std::string final_path, part_path;
  OnDisk state = OnDisk::kAbsent;  // what is at final_path
  std::string sha256;              // of the part on disk, once verified
  bool resumed = false;            // the part held bytes from an earlier attempt
};

}  // namespace ember::pull
