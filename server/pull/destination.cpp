#include "server/pull/destination.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "gguf/model_files.h"
#include "server/pull/names.h"
#include "server/pull/sha256.h"

namespace ember::pull {
namespace fs = std::filesystem;

namespace {

constexpr auto kHeartbeat = std::chrono::seconds(5);

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

std::string random_nonce() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str().substr(0, 4096);
}

// Whether process `pid` still runs (on this host).
bool alive(long pid) {
  if (pid <= 0) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

std::chrono::seconds DestinationLock::stale_after() {
  return std::chrono::seconds(60);
}

std::unique_ptr<DestinationLock> DestinationLock::try_acquire(const std::string& path,
                                                              Holder* holder,
                                                              std::string* took_over) {
  const std::string me = host_name();
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) {
      const std::string content = std::to_string(getpid()) + " " + me + " " + random_nonce() + "\n";
      struct stat st {};
      if (write(fd, content.data(), content.size()) != ssize_t(content.size()) ||
          fstat(fd, &st) != 0) {
        const int err = errno;
        close(fd);
        unlink(path.c_str());
        throw std::runtime_error("cannot write the lock file " + path + ": " + std::strerror(err));
      }
      return std::unique_ptr<DestinationLock>(new DestinationLock(path, fd, st.st_ino));
    }
    if (errno != EEXIST)
      throw std::runtime_error("cannot create the lock file " + path + ": " + std::strerror(errno));

    // Someone holds it: who, and are they still there?
    const auto content = read_small_file(path);
    struct stat st {};
    if (!content || stat(path.c_str(), &st) != 0) continue;  // just released: try again
    Holder h;
    std::istringstream fields(*content);
    fields >> h.pid >> h.host;
    h.heartbeat_age_s =
        std::chrono::duration<double>(std::chrono::system_clock::now() -
                                      std::chrono::system_clock::from_time_t(st.st_mtime))
            .count();
    if (holder) *holder = h;
    const bool dead = !h.host.empty() && h.host == me && !alive(h.pid);
    const bool silent = h.heartbeat_age_s > double(stale_after().count());
    if (!dead && !silent) return nullptr;

    // Take it over without racing another taker: move the stale file aside and check that it is
    // the one judged stale. If a fresh lock replaced it meanwhile, put that one back.
    const std::string aside = path + ".stale." + std::to_string(getpid()) + "." + random_nonce();
    if (rename(path.c_str(), aside.c_str()) != 0) continue;
    if (read_small_file(aside) == content) {
      unlink(aside.c_str());
      if (took_over)
        *took_over = "took over a stale lock: " +
                     (dead ? "process " + std::to_string(h.pid) + " on " + h.host + " is gone"
                           : "no heartbeat from process " + std::to_string(h.pid) + " on " +
                                 h.host + " for " + std::to_string(long(h.heartbeat_age_s)) + " s");
    } else {
      if (link(aside.c_str(), path.c_str()) != 0) { /* its owner will find it lost */
      }
      unlink(aside.c_str());
    }
  }
  return nullptr;
}

DestinationLock::DestinationLock(std::string path, int fd, ino_t inode)
    : path_(std::move(path)), fd_(fd), inode_(inode), thread_([this] { heartbeat(); }) {}

void DestinationLock::heartbeat() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, kHeartbeat, [&] { return stopping_; })) {
    futimens(fd_, nullptr);  // now
    struct stat st {};
    if (stat(path_.c_str(), &st) != 0 || st.st_ino != inode_) {
      lost_ = true;
      return;
    }
  }
}

DestinationLock::~DestinationLock() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  struct stat st {};
  if (!lost_ && stat(path_.c_str(), &st) == 0 && st.st_ino == inode_) unlink(path_.c_str());
  close(fd_);
}

std::optional<std::string> sha256_of_file(const std::string& path,
                                          const std::atomic<bool>* cancelled) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  Sha256 hash;
  std::vector<char> buf(4 << 20);
  for (;;) {
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (cancelled && cancelled->load())) {
      close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    hash.update(buf.data(), size_t(n));
  }
  close(fd);
  return hash.hex_digest();
}

OnDisk examine(const std::string& path, uint64_t size, const std::string& sha256, int split_index,
               int split_count) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return OnDisk::kAbsent;
  try {
    gguf::File file = gguf::File::open(path);  // throws for anything but a whole GGUF file
    const auto no = file.metadata().get_int("split.no");
    const auto count = file.metadata().get_int("split.count").value_or(1);
    // A valid file that is another part (or a whole model where a part belongs) is not broken:
    // it is someone's model, so it is kept.
    if (count != split_count || (split_count > 1 && no.value_or(-1) != split_index - 1))
      return OnDisk::kOther;
    if (size > 0 && file.size() != size) return OnDisk::kOther;
  } catch (const std::exception&) {
    return OnDisk::kBroken;
  }
  if (sha256.empty()) return OnDisk::kOther;  // cannot be shown to be the same
  const auto actual = sha256_of_file(path);
  return actual == sha256 ? OnDisk::kSame : OnDisk::kOther;
}

std::vector<std::string> destination_names(const std::string& repo_path, const std::string& tag) {
  const std::string base = fs::path(repo_path).filename().string();
  const auto split = gguf::parse_split_name(base);
  // NAME and its ending: "model" + ".gguf", or "model" + "-00001-of-00003.gguf".
  const std::string stem = split ? split->prefix : base.substr(0, base.size() - 5);
  auto with = [&](const std::string& extra) {
    return split ? gguf::split_path(stem + "-" + extra, 1, split->count)
                 : stem + "-" + extra + base.substr(base.size() - 5);
  };
  std::vector<std::string> names = {split ? gguf::split_path(stem, 1, split->count) : base};
  const std::string quant = quant_tag(repo_path);
  if (!quant.empty() && quant_tag(base) != quant) names.push_back(with(quant));
  if (!tag.empty()) names.push_back(with(tag));
  return names;
}

std::string part_name(const std::string& first, int index, int count) {
  if (count <= 1) return first;
  const auto split = gguf::parse_split_name(first);
  return split ? gguf::split_path(split->prefix, index, count) : first;
}

bool rename_no_replace(const std::string& from, const std::string& to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return false;
  // File systems without RENAME_NOREPLACE: a hard link fails when the name exists.
  if (link(from.c_str(), to.c_str()) == 0) {
    unlink(from.c_str());
    return true;
  }
  if (errno == EEXIST) return false;
  // No hard links either (some network and FUSE file systems): check, then rename.
  struct stat st {};
  if (lstat(to.c_str(), &st) == 0) {
    errno = EEXIST;
    return false;
  }
  return std::rename(from.c_str(), to.c_str()) == 0;
}

}  // namespace ember::pull
