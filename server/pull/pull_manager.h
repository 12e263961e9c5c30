// Pulls of GGUF files from a Hugging Face hub into the models directory, shared by
// `POST /api/pull` and `ember pull`. Each pull reports NDJSON progress lines (SPEC.md): starting,
// queued, downloading (about once a second), verifying, complete or error. A second pull of the
// same file joins the first; different files download concurrently up to a limit, the rest
// wait. Files arrive as NAME.part (resumed with Range after an interruption), are checked
// (sha256 against the hub's X-Linked-Etag, GGUF header), then renamed into place atomically;
// an existing file is never overwritten and a failed pull leaves no model file behind.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "server/pull/hub_client.h"

namespace ember::pull {

struct PullRequest {
  std::string repo;      // ORG/NAME
  std::string filename;  // empty: choose from the repo's listing (Q4_K_M, else the closest)
  std::string revision = "main";
};

// A request that cannot start (bad names): HTTP 400 with this message.
class PullRejected : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Throws PullRejected for names that could leave the models directory or are not GGUF files.
void validate(const PullRequest& request);
// The file a repo listing offers for `preferred` quantisation ("Q4_K_M"): that one, else the
// nearest in a preference order; empty when the listing has no GGUF file.
std::string choose_file(const std::vector<std::string>& files, std::string* reason = nullptr);

class PullManager {
 public:
  // Gets each NDJSON line; `last` marks the final one ("complete" or "error").
  using Listener = std::function<void(const std::string& ndjson_line, bool last)>;
  // `on_complete(path)` registers a finished file (a registry rescan) before "complete" is sent.
  PullManager(std::string models_dir, HubOptions hub, int max_downloads,
              std::function<std::string(const std::string& path)> on_complete);
  ~PullManager();  // cancels what is running and waits for it

  // Starts a pull, or joins the one already fetching the same file. `listener` gets every
  // line from now on (called from a download thread); the last is "complete" or "error".
  void pull(const PullRequest& request, Listener listener);
  // One line per pull in progress: {"model","filename","status","completed","total"}.
  std::vector<std::string> status_lines() const;

 private:
  struct Task;
  void run(std::shared_ptr<Task> task);
  void emit(Task& task, const std::string& line, bool last);

  std::string models_dir_;
  HubClient hub_;
  int max_downloads_;
  std::function<std::string(const std::string&)> on_complete_;
  mutable std::mutex mutex_;
  std::condition_variable slot_free_;
  int downloading_ = 0;
  std::atomic<bool> stopping_{false};
  std::map<std::string, std::shared_ptr<Task>> tasks_;  // by repo/revision/filename as asked
  int running_ = 0;  // download threads (detached; the destructor waits for them)
  std::condition_variable all_done_;
};

}  // namespace ember::pull
