#include "bench/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ember::bench {
namespace {

// Sums 64-bit words with four independent accumulators so that loads, not adds, set the pace.
__attribute__((noinline)) uint64_t stream_sum(const uint64_t* p, size_t words) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i + 8 <= words; i += 8) {
    a += p[i] ^ p[i + 4];
    b += p[i + 1] ^ p[i + 5];
    c += p[i + 2] ^ p[i + 6];
    d += p[i + 3] ^ p[i + 7];
  }
  return a + b + c + d;
}

}  // namespace

double measure_read_bandwidth(cpu::ThreadPool& pool, size_t bytes, int repeats) {
  size_t words = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  // Touch every page from the thread that will read it (first-touch placement).
  pool.run([&](int t) {
    auto [begin, end] = cpu::ThreadPool::share(static_cast<int64_t>(words), t, pool.size());
    std::memset(buffer.get() + begin, t + 1, (end - begin) * sizeof(uint64_t));
  });
  double best = 0;
  std::vector<uint64_t> sink(pool.size());
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    pool.run([&](int t) {
      auto [begin, end] = cpu::ThreadPool::share(static_cast<int64_t>(words), t, pool.size());
      sink[t] += stream_sum(buffer.get() + begin, end - begin);
    });
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, bytes / seconds / 1e9);
  }
  volatile uint64_t keep = sink[0];
  (void)keep;
  return best;
}

double measure_device_bandwidth(model::ComputeDevice& device, size_t bytes, int repeats) {
  auto from = device.buffer(bytes), to = device.buffer(bytes);
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    device.copy(*from, *to, bytes, 0, 0);
    device.finish();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * double(bytes) / s / 1e9);
  }
  return best;
}

}  // namespace ember::bench
