// Measures the machine's memory read bandwidth the way a matrix-vector product uses it: threads
// streaming disjoint parts of a buffer far larger than the caches. On AVX-512 machines it reads
// the way ../shared/tools/membw.c does (aligned 512-bit loads, four float accumulators), the floor
// the performance targets are stated against; a loop of 64-bit loads read 15-20% more on the
// development VM, so the floor depends on the method and this one matches the reference.
#pragma once

#include "kernels/cpu/thread_pool.h"
#include "model/backends/compute_device.h"

namespace ember::bench {

// Best-of-`repeats` read bandwidth in GB/s (1e9 bytes/s) over a buffer of `bytes`.
double measure_read_bandwidth(cpu::ThreadPool& pool, size_t bytes = size_t(1) << 30,
                              int repeats = 5);

// A compute device's memory bandwidth in GB/s: best-of-`repeats` copy of a buffer of `bytes` to
// another, counted as read + write (2·bytes per copy).
double measure_device_bandwidth(model::ComputeDevice& device, size_t bytes = size_t(256) << 20,
                                int repeats = 5);

}  // namespace ember::bench
