// `ember bench kernels --backend vulkan|opencl`: the CPU table (bench_kernels.cpp) for a device:
// matrix-vector GB/s against the device's copy bandwidth and matrix-matrix GFLOP/s per weight
// type, through the backend's own ops (model/backends/device_backend.h), so what is measured is
// what a forward pass runs. Each timing queues a batch of launches and waits for them, so it
// includes one submission.
//
// Matrix-vector products cycle through enough copies of each matrix (≥ 512 MiB on GPUs; two on
// a CPU-type device such as lavapipe or PoCL) that the weights come from memory, not cache.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/memory_bandwidth.h"
#include "bench/random_weights.h"
#include "model/backends/opencl_backend.h"
#include "model/backends/vulkan_backend.h"

namespace ember::bench {
namespace {

using gguf::TensorType;

struct Shape {
  int64_t cols, rows;
};
constexpr Shape kShapes[] = {{2048, 2048}, {2048, 5632}, {5632, 2048}, {2048, 32000}};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::unique_ptr<model::DeviceBackend> open(const KernelBenchOptions& options) {
  if (options.backend == "vulkan")
    return std::make_unique<model::VulkanBackend>(model::VulkanOptions{options.device});
  return std::make_unique<model::OpenClBackend>(model::OpenClOptions{options.device});
}

void bench_shape(const KernelBenchOptions& options, TensorType type, const Shape& shape,
                 double bandwidth) {
  // A backend per shape: its device copies of the weights go with it.
  std::unique_ptr<model::DeviceBackend> backend = open(options);
  model::DeviceBackend& vk = *backend;
  const size_t matrix_bytes = gguf::bytes_for(type, shape.cols * shape.rows);
  const size_t copies =
      vk.limits().type == "cpu" ? 2 : std::max<size_t>(2, (size_t(512) << 20) / matrix_bytes);
  const std::vector<uint8_t> weights = random_weights(type, matrix_bytes);
  std::deque<gguf::TensorInfo> infos(copies);  // one tensor per copy: uploaded separately
  std::vector<model::Weight> w;
  for (gguf::TensorInfo& info : infos) {
    info.name = "bench";
    info.type = type;
    info.n_dims = 2;
    info.shape = {uint64_t(shape.cols), uint64_t(shape.rows), 1, 1};
    info.bytes = matrix_bytes;
    info.data = weights.data();
    w.push_back({&info, 0, 0});
  }
  const int64_t tokens = options.tokens;
  std::vector<float> host(size_t(shape.cols * tokens), 0.5f), out(size_t(shape.rows));
  model::Tensor x = vk.alloc(tokens, shape.cols), y = vk.alloc(tokens, shape.rows);
  vk.write_rows(x, host.data());
  model::Tensor x1 = x, y1 = y;
  x1.rows = y1.rows = 1;
  for (const model::Weight& m : w) vk.matmul(m, x1, y1);  // uploads, and warms up
  vk.read_rows(y1, 0, 1, out.data());

  double best_gbs = 0;
  for (int pass = 0; pass < 4; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    for (const model::Weight& m : w) vk.matmul(m, x1, y1);
    vk.read_rows(y1, 0, 1, out.data());
    best_gbs = std::max(best_gbs, matrix_bytes * copies / seconds_since(start) / 1e9);
  }
  double best_gflops = 0;
  for (int pass = 0; pass < 3; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    vk.matmul(w[0], x, y);
    vk.read_rows(y, 0, 1, out.data());
    best_gflops =
        std::max(best_gflops, 2.0 * shape.rows * shape.cols * tokens / seconds_since(start) / 1e9);
  }
  std::printf("| %-6s | %-11s | %5lld x %-5lld | %8.1f | %5.0f%% | %8.1f |\n",
              std::string(gguf::type_name(type)).c_str(), options.backend.c_str(),
              static_cast<long long>(shape.cols), static_cast<long long>(shape.rows), best_gbs,
              100.0 * best_gbs / bandwidth, best_gflops);
  std::fflush(stdout);
}

}  // namespace

int run_bench_kernels_device(const KernelBenchOptions& options) {
  std::vector<std::string> names = options.types;
  if (names.size() == 1 && names[0] == "all")
    names = {"F16",  "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",   "Q5_1",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"};
  std::vector<TensorType> types;
  for (const std::string& name : names) {
    auto type = gguf::type_from_name(name);
    if (!type) throw std::invalid_argument("unknown type '" + name + "'");
    types.push_back(*type);
  }
  if (options.tokens < 1) throw std::invalid_argument("--tokens must be at least 1");
  double bandwidth = 0;
  {
    std::unique_ptr<model::DeviceBackend> backend = open(options);
    const model::ComputeDevice::Limits& d = backend->limits();
    bandwidth = measure_device_bandwidth(backend->compute_device());
    std::printf("device: %s (%s, %s, work-groups of %u)\n", d.name.c_str(), d.type.c_str(),
                options.backend.c_str(), d.workgroup);
    std::printf("measured copy bandwidth: %.1f GB/s (256 MiB, read + write)\n\n", bandwidth);
  }
  std::printf(
      "| type   | kernel      | cols x rows   | matvec GB/s | of bw | matmul GFLOP/s (%lld tokens) "
      "|\n",
      static_cast<long long>(options.tokens));
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  for (TensorType type : types)
    for (const Shape& shape : kShapes) bench_shape(options, type, shape, bandwidth);
  return 0;
}

}  // namespace ember::bench
