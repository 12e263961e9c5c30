#include "server/directory_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

namespace ember::server {
namespace {
constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
                           IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;

// Files that come and go without changing what a scan finds: partial downloads and their locks.
bool ignored_name(const std::string& name) {
  for (const char* suffix : {".part", ".lock", ".incomplete"}) {
    const size_t n = std::char_traits<char>::length(suffix);
    if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) return true;
  }
  return false;
}
}  // namespace

DirectoryWatcher::DirectoryWatcher(http::EventLoop& loop, ModelRegistry& registry)
    : loop_(loop), registry_(registry) {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    std::fprintf(stderr, "inotify unavailable: models directories are rescanned only on request\n");
    return;
  }
  loop_.watch(fd_, EPOLLIN, [this](uint32_t) { on_events(); });
  loop_.every(std::chrono::milliseconds(100), [this] {
    if (dirty_ && std::chrono::steady_clock::now() - last_event_ > std::chrono::milliseconds(200)) {
      dirty_ = false;
      const size_t n = registry_.rescan();
      std::fprintf(stderr, "models directory changed: %zu model(s) found\n", n);
    }
    if (registry_.generation() != synced_generation_) sync();
  });
  sync();
}

DirectoryWatcher::~DirectoryWatcher() {
  if (fd_ >= 0) {
    loop_.unwatch(fd_);
    close(fd_);
  }
}

void DirectoryWatcher::sync() {
  synced_generation_ = registry_.generation();
  const std::vector<WatchDir> wanted = registry_.watch_dirs();
  std::set<std::string> want_paths;
  for (const WatchDir& w : wanted) want_paths.insert(w.path);
  for (auto it = watched_.begin(); it != watched_.end();) {
    if (want_paths.count(it->second.path)) {
      it->second.full = false;  // recomputed below
      it->second.children.clear();
      ++it;
      continue;
    }
    inotify_rm_watch(fd_, it->first);
    it = watched_.erase(it);
  }
  bool any_new = false;
  for (const WatchDir& w : wanted) {
    // inotify gives one descriptor per directory: adding it again returns the same one.
    const int wd = inotify_add_watch(fd_, w.path.c_str(), kMask);
    if (wd < 0) {
      if (!warned_)
        std::fprintf(stderr,
                     "cannot watch %s (%s): changes there are seen on POST /api/models/discover "
                     "only (raise fs.inotify.max_user_watches?)\n",
                     w.path.c_str(), std::strerror(errno));
      warned_ = true;
      continue;
    }
    auto [it, added] = watched_.try_emplace(wd, Watched{w.path, false, {}});
    any_new |= added;
    if (w.only_child.empty())
      it->second.full = true;
    else
      it->second.children.insert(w.only_child);
  }
  // What changed in a newly watched directory between the scan that found it and now was
  // seen by nobody: one more scan covers it (and adds no new watch, so it ends there).
  if (any_new) {
    dirty_ = true;
    last_event_ = std::chrono::steady_clock::now();
  }
}

void DirectoryWatcher::on_events() {
  alignas(inotify_event) char buf[8192];
  while (true) {
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      const std::string name = ev->len ? ev->name : "";
      if (ev->mask & IN_Q_OVERFLOW) {  // events were lost: rescan
        dirty_ = true;
        last_event_ = std::chrono::steady_clock::now();
        continue;
      }
      auto it = watched_.find(ev->wd);
      if (ev->mask & IN_IGNORED) {
        if (it != watched_.end()) watched_.erase(it);
        dirty_ = true;  // a watched directory went away
        continue;
      }
      if (it == watched_.end() || ignored_name(name)) continue;
      if (!it->second.full && !it->second.children.count(name)) continue;
      // A new sub-directory is watched at once (the rescan confirms it): files copied into it
      // before the rescan ran are not missed.
      if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && it->second.full) {
        const std::string dir = it->second.path + "/" + name;
        const int wd = inotify_add_watch(fd_, dir.c_str(), kMask);
        if (wd >= 0) watched_.try_emplace(wd, Watched{dir, true, {}});
      }
      dirty_ = true;
      last_event_ = std::chrono::steady_clock::now();
    }
  }
}

PeriodicRescan::PeriodicRescan(ModelRegistry& registry, std::chrono::seconds interval)
    : registry_(registry), interval_(interval) {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!wake_.wait_for(lock, interval_, [this] { return stopping_; })) {
      lock.unlock();
      registry_.rescan();
      lock.lock();
    }
  });
}

PeriodicRescan::~PeriodicRescan() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

}  // namespace ember::server
