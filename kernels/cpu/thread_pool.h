// A small persistent thread pool: `run(fn)` calls fn(thread_index) on every thread at once (the
// calling thread is index 0) and returns when all are done. Workers spin briefly between jobs,
// since a forward pass hands out hundreds of short jobs per token, then sleep.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ember::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // total threads including the caller; at least 1
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void run(const std::function<void(int thread_index)>& fn);

  // The range [begin, end) of `n` items that thread `index` of `count` handles.
  static std::pair<int64_t, int64_t> share(int64_t n, int index, int count) {
    return {n * index / count, n * (index + 1) / count};
  }

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace ember::cpu
