// Pulls of GGUF files from a Hugging Face hub into the models directory, shared by
// `POST /api/pull` and `ember pull`. Each pull reports NDJSON progress lines (SPEC.md): starting,
// selected, queued, joined, downloading (about once a second), verifying, complete or error.
//
// The store never lies (docs/ARCHITECTURE.md):
// - One writer per destination. A pull first resolves which file(s) it will write; pulls of the
//   same file in this process join (by name or by automatic choice alike), and a lock file next
//   to the download (DestinationLock) makes other processes and hosts wait.
// - Success means the verified file on disk: the finished NAME.part is hashed from disk and
//   compared with the hub's sha256 (and its GGUF header read) before it is renamed into place;
//   "already present" only for a file of the hub's size and sha256. A different file of the same
//   name is kept, and the download gets a distinct, deterministic name; a broken one is replaced.
// - Nothing half-visible: files arrive as NAME.part; a split set's parts are renamed last part
//   first, so discovery (which looks at part 1) sees the set only when it is whole.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/pull/hub_client.h"
#include "server/pull/names.h"

namespace ember::pull {

class DestinationLock;

class PullManager {
 public:
  // Gets each NDJSON line; `last` marks the final one ("complete" or "error").
  using Listener = std::function<void(const std::string& ndjson_line, bool last)>;
  // True once the listener's client has hung up; a pull whose every client is gone is cancelled.
  using Gone = std::function<bool()>;

  // `on_complete(path)` registers a finished file (a registry rescan) and returns its model id
  // (empty when discovery did not take it) before "complete" is sent.
  PullManager(std::string models_dir, HubOptions hub, int max_downloads,
              std::function<std::string(const std::string& path)> on_complete);
  ~PullManager();  // cancels what is running and waits for it

  // Starts a pull, or joins the one already writing the same file. `listener` gets every line
  // from now on (called from a pull's thread); the last is "complete" or "error".
  void pull(const PullRequest& request, Listener listener, Gone gone = {});
  // Cancels the pulls whose id (the file name GET / shows), ORG/REPO or ORG/REPO/FILE is
  // `target`; their streams end with {"status":"error","error":reason}. Returns their ids.
  std::vector<std::string> cancel(const std::string& target, const std::string& reason);
  // Cancels every pull and refuses new ones (shutdown).
  void cancel_all(const std::string& reason);
  // One JSON object per pull in progress: {"id","model","filename","files","status",
  // "completed","total","percent","clients"}.
  std::vector<std::string> status_lines() const;

  // A download that received nothing for this long is not joined: a new pull restarts it.
  static constexpr std::chrono::seconds kNoProgress{10};

 private:
  struct Task;
  struct Part;
  using Clock = std::chrono::steady_clock;

  // pull_manager.cpp: tasks, listeners, joining, slots, cancellation.
  // Sends a line to the task's followers (outside the lock).
  void emit(Task& task, const std::string& line, bool last);
  // Polled by every wait and transfer: cancelled, every client gone, or the lock lost.
  bool should_stop(Task& task);
  // Joins a task writing `key`, or registers `task` as its writer. True: joined (the caller's
  // followers now follow the other task).
  bool join_or_register(const std::shared_ptr<Task>& task, const std::string& key);
  // Waits (saying "queued") for one of the --max-downloads slots; false when cancelled.
  bool acquire_slot(Task& task);
  void release_slot();
  // Sends the last line, then forgets the task (a later pull of its file starts afresh).
  void finish(Task& task, const std::string& line);

  // pull_run.cpp: one pull's steps.
  void run(const std::shared_ptr<Task>& task);
  // Returns the final line ("complete" or "error"), or "" when the task joined another.
  std::string run_steps(const std::shared_ptr<Task>& task, std::unique_ptr<DestinationLock>& lock,
                        bool& holding_slot);
  // Takes the destination's lock, saying "joined" while another process holds it.
  std::unique_ptr<DestinationLock> wait_for_lock(Task& task, const std::string& lock_path);
  // Downloads one part into part_path and verifies it from disk (size, sha256).
  void fetch(Task& task, Part& part, uint64_t done_before);
  // Sends {"status": status, field: text}.
  void say(Task& task, const std::string& status, const std::string& field,
           const std::string& text);

  std::string models_dir_;
  HubClient hub_;
  int max_downloads_;
  std::function<std::string(const std::string&)> on_complete_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;  // a slot freed, a task ended, or shutdown
  int downloading_ = 0;
  bool stopping_ = false;
  std::string stop_reason_;
  std::list<std::shared_ptr<Task>> tasks_;                  // every unfinished pull
  std::map<std::string, std::shared_ptr<Task>> by_target_;  // writers, by destination + source
  std::list<std::thread> workers_;       // one thread per pull; joined once it has exited
  std::vector<std::thread::id> exited_;  // workers about to return
};

}  // namespace ember::pull
