// `ember bench kernels`: matrix-vector GB/s and matrix-matrix GFLOP/s per weight type on the
// shapes of a 1.1B model, next to the machine's measured read bandwidth.
//
// Matrix-vector products cycle through enough copies of each matrix (≥ 512 MiB) that the weights
// come from memory, not cache, as they do when a real model generates a token. Types with an
// interleaved layout (kernels.h) get a second row, "x16": the products over it, as the CPU
// backend runs them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench.h"
#include "bench/memory_bandwidth.h"
#include "bench/random_weights.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/reference.h"

namespace ember::bench {
namespace {

using gguf::TensorType;

struct Shape {
  int64_t cols, rows;  // input length, output length (GGUF shape [cols, rows])
};
constexpr Shape kShapes[] = {{2048, 2048}, {2048, 5632}, {5632, 2048}, {2048, 32000}};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void bench_type(TensorType type, cpu::Isa isa, cpu::ThreadPool& pool, double bandwidth,
                int64_t tokens) {
  const cpu::TypeKernels* k = cpu::find_kernels(type, isa);
  if (!k) return;
  for (const Shape& shape : kShapes) {
    const size_t matrix_bytes = gguf::bytes_for(type, shape.cols * shape.rows);
    const size_t copies = std::max<size_t>(2, (size_t(512) << 20) / matrix_bytes);
    std::vector<uint8_t> weights = random_weights(type, matrix_bytes * copies);
    std::vector<float> x(shape.cols * tokens, 0.5f), y(shape.rows * tokens);
    cpu::MatmulScratch scratch;
    // The same products over `data` (interleaved: each copy in k's interleaved layout).
    auto measure = [&](const uint8_t* data, bool interleaved, const char* kernel) {
      // Matrix-vector: run through every copy a few times, keep the best pass.
      double best_gbs = 0;
      for (int pass = 0; pass < 4; ++pass) {
        auto start = std::chrono::steady_clock::now();
        for (size_t c = 0; c < copies; ++c)
          cpu::matmul(*k, data + c * matrix_bytes, shape.rows, shape.cols, x.data(), 1, y.data(),
                      pool, scratch, interleaved);
        best_gbs = std::max(best_gbs, matrix_bytes * copies / seconds_since(start) / 1e9);
      }
      // Matrix-matrix: one copy (it is compute-bound), best of three.
      double best_gflops = 0;
      for (int pass = 0; pass < 3; ++pass) {
        auto start = std::chrono::steady_clock::now();
        cpu::matmul(*k, data, shape.rows, shape.cols, x.data(), tokens, y.data(), pool, scratch,
                    interleaved);
        best_gflops = std::max(best_gflops,
                               2.0 * shape.rows * shape.cols * tokens / seconds_since(start) / 1e9);
      }
      std::printf("| %-6s | %-14s | %5lld x %-5lld | %8.1f | %5.0f%% | %8.1f |\n",
                  std::string(gguf::type_name(type)).c_str(), kernel,
                  static_cast<long long>(shape.cols), static_cast<long long>(shape.rows), best_gbs,
                  100.0 * best_gbs / bandwidth, best_gflops);
      std::fflush(stdout);
    };
    measure(weights.data(), false, cpu::isa_name(k->isa));
    if (k->interleaved) {  // what the CPU backend runs (kernels.h): the same weights rewritten
      std::vector<uint8_t> rewritten(weights.size());
      for (size_t c = 0; c < copies; ++c)
        cpu::interleave(*k, weights.data() + c * matrix_bytes, shape.rows, shape.cols,
                        rewritten.data() + c * matrix_bytes, pool);
      weights.clear();
      weights.shrink_to_fit();
      measure(rewritten.data(), true, (std::string(cpu::isa_name(k->isa)) + " x16").c_str());
    }
  }
}

}  // namespace

int run_bench_kernels(const KernelBenchOptions& options) {
  if (options.backend == "vulkan" || options.backend == "opencl")
    return run_bench_kernels_device(options);
  if (options.backend != "cpu")
    throw std::invalid_argument("--backend must be cpu, vulkan or opencl, not '" + options.backend +
                                "'");
  const int threads = options.threads > 0
                          ? options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t tokens = options.tokens;
  std::vector<TensorType> types;
  std::vector<std::string> names = options.types;
  if (names.size() == 1 && names[0] == "all")
    names = {"F16",  "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",   "Q5_1",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"};
  for (const std::string& name : names) {
    auto type = gguf::type_from_name(name);
    if (!type || !cpu::find_kernels(*type))
      throw std::invalid_argument("unknown or unsupported type '" + name + "'");
    types.push_back(*type);
  }
  cpu::Isa isa = cpu::best_isa();
  if (options.isa) {
    bool found = false;
    for (cpu::Isa level : cpu::available_isas())
      if (*options.isa == cpu::isa_name(level)) isa = level, found = true;
    if (!found)
      throw std::invalid_argument("--isa must be one this CPU has, up to " +
                                  std::string(cpu::isa_name(cpu::best_isa())));
  }

  cpu::ThreadPool pool(threads);
  std::printf("cpu features: %s\nkernel level: %s, %d threads\n",
              cpu::describe_cpu_features().c_str(), cpu::isa_name(isa), threads);
  double bandwidth = measure_read_bandwidth(pool);
  std::printf("measured read bandwidth: %.1f GB/s (%d threads, 1 GiB buffer)\n\n", bandwidth,
              threads);
  std::printf(
      "| type   | kernel         | cols x rows   | matvec GB/s | of bw | matmul GFLOP/s (%lld "
      "tokens) "
      "|\n",
      static_cast<long long>(tokens));
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  for (TensorType type : types) bench_type(type, isa, pool, bandwidth, tokens);
  return 0;
}

}  // namespace ember::bench
