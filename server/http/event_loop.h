// A small epoll event loop in the spirit of Redis's ae: file descriptors with a callback for
// readiness, a periodic tick for timeouts, and post() for other threads to run work on the
// loop's thread (the scheduler hands tokens to connections this way).
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace ember::http {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;  // EPOLLIN, EPOLLOUT, EPOLLHUP, ...

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void watch(int fd, uint32_t events, Handler handler);  // level-triggered
  void modify(int fd, uint32_t events);
  void unwatch(int fd);  // before the fd is closed

  // Runs `fn` on the loop's thread soon. Safe from any thread.
  void post(std::function<void()> fn);
  // Calls `fn` about every `period` from the loop's thread.
  void every(std::chrono::milliseconds period, std::function<void()> fn);

  void run();   // until stop()
  void stop();  // safe from any thread and from signal-free contexts

 private:
  void drain_posted();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd that post() writes
  bool running_ = false;
  std::unordered_map<int, Handler> handlers_;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  struct Periodic {
    std::chrono::milliseconds period;
    std::chrono::steady_clock::time_point next;
    std::function<void()> fn;
  };
  std::vector<Periodic> periodic_;
};

}  // namespace ember::http
