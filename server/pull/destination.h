// Where a pull's files land in the models directory, and who may write them there. The store's
// rules (docs/ARCHITECTURE.md): one writer per destination (across threads, processes and hosts
// sharing the directory), success means the verified file on disk, and nothing half-visible (a
// download is NAME.part until it is checked; a split set's first part is renamed last).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ember::pull {

// The right to write one destination: the file NAME.part.lock, created with O_CREAT|O_EXCL, holds
// "pid host nonce"; while it is held a thread refreshes its modification time (the heartbeat).
// Another pull finding it waits. A lock whose owner is a pid that no longer runs on this host, or
// whose heartbeat is older than stale_after(), is taken over (this handles `ember pull` killed
// with SIGKILL, and hosts sharing a network volume). Removed when destroyed.
class DestinationLock {
 public:
  struct Holder {
    long pid = 0;
    std::string host;
    double heartbeat_age_s = 0;  // seconds since the owner last refreshed the lock
  };

  // One attempt: the lock, or null with the current owner in `holder`. `took_over` (when not
  // null) is set to a description of a stale lock that was replaced, or left empty.
  static std::unique_ptr<DestinationLock> try_acquire(const std::string& lock_path, Holder* holder,
                                                      std::string* took_over = nullptr);
  // A heartbeat older than this means the owner is gone (60 s; the heartbeat is every 5 s).
  static std::chrono::seconds stale_after();

  ~DestinationLock();
  DestinationLock(const DestinationLock&) = delete;
  DestinationLock& operator=(const DestinationLock&) = delete;

  // True once another process has replaced the lock file (this process stalled so long that it
  // looked dead): the owner must stop writing.
  bool lost() const { return lost_.load(); }

 private:
  DestinationLock(std::string path, int fd, ino_t inode);
  void heartbeat();

  std::string path_;
  int fd_;
  ino_t inode_;
  std::atomic<bool> lost_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

// What a file in the way is, compared with the file the hub offers.
enum class OnDisk {
  kAbsent,  // nothing there
  kSame,    // the same size and sha256 as the hub reports
  kBroken,  // not a readable GGUF file (empty, truncated, other content): may be replaced
  kOther,   // a readable GGUF file that is not (or cannot be shown to be) the one asked for
};

// Compares `path` with a file of `size` bytes (0: unknown) and `sha256` (empty: unknown; then a
// valid file is kOther, since it cannot be shown to be the same). `split_index`/`split_count`
// (1-based) describe the part a split file must be. Hashes the file only when the size matches.
OnDisk examine(const std::string& path, uint64_t size, const std::string& sha256,
               int split_index = 1, int split_count = 1);

// The names a file (or a split set, given its first part) may take in the models directory, in
// the order tried: its own name, then with the quantisation of its repo path when the name
// lacks it ("Q8_0/model.gguf" → "model-Q8_0.gguf"), then with `tag` ("model-1a2b3c4d.gguf").
// Deterministic, so pulling the same file again finds it. Split names keep their suffix.
std::vector<std::string> destination_names(const std::string& repo_path, const std::string& tag);

// The name of part `index` of the set whose first part is `first` (first itself when single).
std::string part_name(const std::string& first, int index, int count);

// Renames without replacing: false (errno EEXIST) when `to` exists. Atomic where the file system
// allows (renameat2 RENAME_NOREPLACE, else link + unlink).
bool rename_no_replace(const std::string& from, const std::string& to);

// The sha256 of a file's contents (hex); `cancelled` is polled between chunks.
std::optional<std::string> sha256_of_file(const std::string& path,
                                          const std::atomic<bool>* cancelled = nullptr);

}  // namespace ember::pull
