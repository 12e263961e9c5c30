#include "server/http/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ember::http {

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0)
    throw std::runtime_error(std::string("cannot create the event loop: ") + std::strerror(errno));
  // Posted work runs after the whole batch of events (run()), not from this handler: work that
  // closes a connection frees its fd number, and a later event of the same batch for that
  // number must not reach a connection accepted meanwhile under it.
  watch(wake_fd_, EPOLLIN, [this](uint32_t) {
    uint64_t n;
    while (read(wake_fd_, &n, sizeof n) > 0) {
    }
  });
}

EventLoop::~EventLoop() {
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

void EventLoop::watch(int fd, uint32_t events, Handler handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)
    throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
  handlers_[fd] = std::move(handler);
}

void EventLoop::modify(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
}

void EventLoop::unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void EventLoop::every(std::chrono::milliseconds period, std::function<void()> fn) {
  periodic_.push_back({period, std::chrono::steady_clock::now() + period, std::move(fn)});
}

void EventLoop::drain_posted() {
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    batch.swap(posted_);
  }
  for (auto& fn : batch) fn();
}

void EventLoop::stop() {
  post([this] { running_ = false; });
}

void EventLoop::run() {
  running_ = true;
  std::vector<epoll_event> events(256);
  while (running_) {
    auto now = std::chrono::steady_clock::now();
    int timeout_ms = 1000;
    for (const Periodic& p : periodic_) {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(p.next - now).count();
      timeout_ms = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(timeout_ms, wait)));
    }
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR)
      throw std::runtime_error(std::string("epoll_wait: ") + std::strerror(errno));
    for (int i = 0; i < n; ++i) {
      // A handler may unwatch other fds (closing connections): look each one up afresh.
      auto it = handlers_.find(events[i].data.fd);
      if (it == handlers_.end()) continue;
      Handler h = it->second;  // the handler may unwatch its own fd
      h(events[i].events);
    }
    drain_posted();
    now = std::chrono::steady_clock::now();
    for (Periodic& p : periodic_)
      if (now >= p.next) {
        p.next = now + p.period;
        p.fn();
      }
  }
}

}  // namespace ember::http
