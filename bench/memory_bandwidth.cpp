#include "bench/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernels/cpu/cpu_features.h"

namespace ember::bench {
namespace {

// Sums 64-bit words with four independent accumulators so that loads, not adds, set the pace
// (any CPU).
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

#if defined(__x86_64__)
// The same with aligned 512-bit loads into four float accumulators: the method of
// ../shared/tools/membw.c, the reference floor for issue 18, so the two read the same.
__attribute__((noinline, target("avx512f"))) uint64_t stream_sum_avx512(const uint64_t* p,
                                                                        size_t words) {
  const auto* f = reinterpret_cast<const float*>(p);
  const size_t n = words * 2;
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i + 64 <= n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_load_ps(f + i));
    s1 = _mm512_add_ps(s1, _mm512_load_ps(f + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_load_ps(f + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_load_ps(f + i + 48));
  }
  alignas(64) uint32_t lanes[16];
  _mm512_store_ps(reinterpret_cast<float*>(lanes),
                  _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  uint64_t bits = 0;
  for (uint32_t lane : lanes) bits += lane;
  return bits;
}
#endif

}  // namespace

double measure_read_bandwidth(cpu::ThreadPool& pool, size_t bytes, int repeats) {
  // Whole 64-byte lines, and each thread's share too (aligned 512-bit loads).
  const size_t lines = bytes / 64;
  std::unique_ptr<uint64_t[], void (*)(void*)> buffer(
      static_cast<uint64_t*>(std::aligned_alloc(64, lines * 64)), std::free);
  if (!buffer) throw std::bad_alloc();
  auto share = [&](int t) {
    auto [begin, end] = cpu::ThreadPool::share(static_cast<int64_t>(lines), t, pool.size());
    return std::pair<size_t, size_t>(size_t(begin) * 8, size_t(end) * 8);
  };
#if defined(__x86_64__)
  const bool avx512 = cpu::cpu_features().avx512f;
#else
  const bool avx512 = false;
#endif
  // Touch every page from the thread that will read it (first-touch placement).
  pool.run([&](int t) {
    auto [begin, end] = share(t);
    std::memset(buffer.get() + begin, t + 1, (end - begin) * sizeof(uint64_t));
  });
  double best = 0;
  std::vector<uint64_t> sink(pool.size());
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    pool.run([&](int t) {
      auto [begin, end] = share(t);
#if defined(__x86_64__)
      if (avx512) {
        sink[t] += stream_sum_avx512(buffer.get() + begin, end - begin);
        return;
      }
#endif
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
