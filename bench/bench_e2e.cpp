// `ember bench e2e --model FILE [-p 512] [-n 128] [--threads N] [--backend B] [placement]`:
// prompt processing and generation speed of one sequence, with the memory bandwidth generation
// achieves next to the floor (measured bandwidth ÷ bytes of weights read per token: the CPU's
// read bandwidth, or a Vulkan device's copy bandwidth), and the resident memory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

#include "bench/bench.h"
#include "bench/memory_bandwidth.h"
#include "gguf/model_files.h"
#include "model/backends/cpu_backend.h"
#include "model/backends/device_backend.h"
#include "model/backends/profiling_backend.h"
#include "model/transformer.h"

namespace ember::bench {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

long resident_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// One more generation of n_gen tokens after `prompt`, every backend call timed: per kind of
// operation its calls, milliseconds and share of a token, and the GB/s of what it reads (weights
// for matrix products, keys and values for attention), then what the argmax over the logits and
// everything outside the backend's calls take.
void print_profile(const gguf::ModelFiles& files, model::Backend& backend,
                   const std::vector<int32_t>& prompt, int n_gen, double bandwidth,
                   model::CacheType cache) {
  if (dynamic_cast<model::DeviceBackend*>(&backend))
    throw std::invalid_argument("--profile times the CPU backend's calls (--backend cpu)");
  model::ProfilingBackend profiler(backend);
  const int n_ctx = static_cast<int>(prompt.size()) + n_gen + 1;
  model::Transformer t(files, profiler, n_ctx, cache, 1, {});
  std::vector<float> logits = t.forward(prompt, false);
  profiler.clear();
  double argmax_seconds = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n_gen; ++i) {
    const auto pick = std::chrono::steady_clock::now();
    const int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    argmax_seconds += seconds_since(pick);
    logits = t.forward({next}, false);
  }
  const double total = seconds_since(start);
  std::vector<std::pair<std::string, model::ProfilingBackend::Op>> ops(profiler.ops().begin(),
                                                                       profiler.ops().end());
  std::sort(ops.begin(), ops.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  std::printf("\nprofile of %d generated tokens (%.3f ms per token; floor %.1f GB/s):\n", n_gen,
              1e3 * total / n_gen, bandwidth);
  std::printf("| op | calls/token | ms/token | share | GB/s |\n| --- | --- | --- | --- | --- |\n");
  double in_ops = 0;
  for (const auto& [name, op] : ops) {
    in_ops += op.seconds;
    char rate[32] = "";
    if (op.bytes > 0) std::snprintf(rate, sizeof rate, "%.1f", op.bytes / op.seconds / 1e9);
    std::printf("| %s | %.1f | %.3f | %.1f%% | %s |\n", name.c_str(), double(op.calls) / n_gen,
                1e3 * op.seconds / n_gen, 100.0 * op.seconds / total, rate);
  }
  std::printf("| argmax over the logits | 1.0 | %.3f | %.1f%% | |\n", 1e3 * argmax_seconds / n_gen,
              100.0 * argmax_seconds / total);
  const double outside = total - in_ops - argmax_seconds;
  std::printf(
      "| outside the backend (forward-pass bookkeeping, logits copy) | | %.3f | %.1f%% | |\n",
      1e3 * outside / n_gen, 100.0 * outside / total);
}

}  // namespace

int run_bench_e2e(const E2eBenchOptions& options) {
  const std::string* path = &options.model;
  const int n_prompt = options.n_prompt, n_gen = options.n_gen, threads = options.threads;
  const int repeat = options.repeat;
  if (n_prompt < 1 || n_gen < 1 || threads < 1 || repeat < 1)
    throw std::invalid_argument("-p, -n, --threads and --repeat must be at least 1");

  long rss_before = resident_kib();
  gguf::ModelFiles files = gguf::ModelFiles::open(*path);
  model::BackendSpec spec = options.backend;
  spec.interleave = options.interleave;
  model::Backends backends = model::make_backends(spec);
  model::Transformer t(files, *backends.main, n_prompt + n_gen + 1, options.cache, 1,
                       backends.placement);
  const double weight_bytes = static_cast<double>(files.total_tensor_bytes());
  std::mt19937 rng(1);
  std::vector<int32_t> prompt(n_prompt);
  for (int32_t& id : prompt) id = static_cast<int32_t>(rng() % t.n_vocab());

  double best_pp = 0, best_tg = 0;
  for (int r = 0; r < repeat; ++r) {
    t.reset();
    auto start = std::chrono::steady_clock::now();
    std::vector<float> logits = t.forward(prompt, false);
    best_pp = std::max(best_pp, n_prompt / seconds_since(start));
    start = std::chrono::steady_clock::now();
    int32_t next = 1;
    for (int i = 0; i < n_gen; ++i) {
      next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      logits = t.forward({next}, false);
    }
    best_tg = std::max(best_tg, n_gen / seconds_since(start));
  }
  long rss_after = resident_kib();
  auto* device = dynamic_cast<model::DeviceBackend*>(backends.main.get());
  double bandwidth = 0;
  std::string where;
  if (device) {
    bandwidth = measure_device_bandwidth(device->compute_device());
    where = options.backend.kind + ", " + device->limits().name + " (" + device->limits().type +
            ")" + (backends.host ? ", split with the CPU" : "");
  } else {
    bandwidth = measure_read_bandwidth(dynamic_cast<model::CpuBackend&>(*backends.main).pool());
    where = std::to_string(threads) + " threads, kernel level " + cpu::isa_name(cpu::best_isa());
  }
  const double kv_bytes =
      double(t.hparams().kv_cache_bytes(n_prompt + n_gen + 1, 1, options.cache));
  // What a generated token reads: every weight, and the keys and values of the positions before
  // it (on average the prompt and half the generation; a long context makes this count).
  const double kv_read =
      double(t.hparams().kv_cache_bytes(1, 1, options.cache)) * (n_prompt + n_gen / 2.0);
  const double token_bytes = weight_bytes + kv_read;
  std::printf("model: %s (%.0f MiB of weights), %s\n", path->c_str(), weight_bytes / (1 << 20),
              where.c_str());
  std::printf(
      "| prompt %d | generation %d | generation GB/s (weights + %.0f MiB KV read) | floor "
      "tokens/s (%.1f GB/s) | of floor |\n",
      n_prompt, n_gen, kv_read / (1 << 20), bandwidth);
  std::printf("| %.1f tokens/s | %.1f tokens/s | %.1f | %.1f | %.0f%% |\n", best_pp, best_tg,
              best_tg * token_bytes / 1e9, bandwidth * 1e9 / token_bytes,
              100.0 * best_tg * token_bytes / (bandwidth * 1e9));
  std::printf(
      "resident memory: %.0f MiB (weights %.0f MiB + KV cache %.1f MiB + other %.0f MiB; %.0f MiB "
      "before loading)\n",
      rss_after / 1024.0, weight_bytes / (1 << 20), kv_bytes / (1 << 20),
      rss_after / 1024.0 - weight_bytes / (1 << 20) - kv_bytes / (1 << 20), rss_before / 1024.0);
  if (options.profile)
    print_profile(files, *backends.main, prompt, n_gen, bandwidth, options.cache);
  return 0;
}

}  // namespace ember::bench
