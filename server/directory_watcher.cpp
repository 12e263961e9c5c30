#include "server/directory_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace ember::server {
namespace fs = std::filesystem;

namespace {
constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
                           IN_DELETE_SELF | IN_ATTRIB;
}

DirectoryWatcher::DirectoryWatcher(http::EventLoop& loop, ModelRegistry& registry)
    : loop_(loop), registry_(registry) {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    std::fprintf(stderr, "inotify unavailable: models directories are rescanned only on request\n");
    return;
  }
  const RegistrySources& s = registry.sources();
  for (const std::string& d : s.dirs) watch_tree(d, 1);
  if (!s.hf_hub.empty()) watch_tree(s.hf_hub, 0);
  if (!s.ollama.empty()) watch_tree(s.ollama + "/manifests", 3);
  loop_.watch(fd_, EPOLLIN, [this](uint32_t) { on_events(); });
  loop_.every(std::chrono::milliseconds(100), [this] {
    if (dirty_ && std::chrono::steady_clock::now() - last_event_ > std::chrono::milliseconds(200)) {
      dirty_ = false;
      const size_t n = registry_.rescan();
      std::fprintf(stderr, "models directory changed: %zu model(s) found\n", n);
    }
  });
}

DirectoryWatcher::~DirectoryWatcher() {
  if (fd_ >= 0) {
    loop_.unwatch(fd_);
    close(fd_);
  }
}

void DirectoryWatcher::watch_tree(const std::string& dir, int depth) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return;
  const int wd = inotify_add_watch(fd_, dir.c_str(), kMask);
  if (wd >= 0) watched_[wd] = dir;
  if (depth <= 0) return;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.is_directory(ec)) watch_tree(entry.path().string(), depth - 1);
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
      // A new sub-directory (one per repo, say) is watched too.
      if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && watched_.count(ev->wd))
        watch_tree(watched_[ev->wd] + "/" + name, 0);
      if (ev->mask & IN_IGNORED) watched_.erase(ev->wd);
      // Partial downloads come and go without making a model.
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".part") == 0) continue;
      dirty_ = true;
      last_event_ = std::chrono::steady_clock::now();
    }
  }
}

}  // namespace ember::server
