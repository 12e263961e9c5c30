// `ember bench e2e --model FILE [-p 512] [-n 128] [--threads N] [--backend B] [placement]`:
// prompt processing and generation speed of one sequence, with the memory bandwidth generation
// achieves next to the floor (measured bandwidth ÷ bytes of weights read per token: the CPU's
// read bandwidth, or a Vulkan device's copy bandwidth), and the resident memory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>

#include "bench/bench.h"
#include "bench/memory_bandwidth.h"
#include "gguf/model_files.h"
#include "kernels/cpu/kernels.h"
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

// `prompt` into each of `batch` sequences, then n_gen steps that each feed every sequence its
// greedy next token, as `batch` server streams decode together. `generation_starts` runs between
// the two (the profile clears its counts there).
struct Lockstep {
  double prompt_seconds = 0, generation_seconds = 0, argmax_seconds = 0;
};
Lockstep run_lockstep(model::Transformer& t, const std::vector<int32_t>& prompt, int n_gen,
                      int batch, const std::function<void()>& generation_starts = {}) {
  Lockstep r;
  const int n_prompt = static_cast<int>(prompt.size()), n_vocab = t.n_vocab();
  t.reset();
  auto start = std::chrono::steady_clock::now();
  std::vector<float> logits;  // batch × n_vocab
  for (int s = 0; s < batch; ++s) {
    std::vector<float> last;
    for (int at = 0; at < n_prompt; at += model::Transformer::kForwardBatch) {
      model::Batch chunk;
      const int end = std::min(n_prompt, at + model::Transformer::kForwardBatch);
      for (int j = at; j < end; ++j) chunk.add(prompt[j], j, s, j == n_prompt - 1);
      last = t.decode(chunk);
    }
    logits.insert(logits.end(), last.begin(), last.end());
  }
  r.prompt_seconds = seconds_since(start);
  if (generation_starts) generation_starts();
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < n_gen; ++i) {
    const auto pick = std::chrono::steady_clock::now();
    model::Batch step;
    for (int s = 0; s < batch; ++s) {
      const float* row = logits.data() + static_cast<size_t>(s) * n_vocab;
      step.add(static_cast<int32_t>(cpu::vector_ops().argmax(row, n_vocab)), n_prompt + i, s, true);
    }
    r.argmax_seconds += seconds_since(pick);
    logits = t.decode(step);
  }
  r.generation_seconds = seconds_since(start);
  return r;
}

// One more generation of n_gen steps after `prompt`, every backend call timed: per kind of
// operation its calls, milliseconds and share of a step, and the GB/s of what it reads (weights
// for matrix products, keys and values for attention), then what the argmax over the logits and
// everything outside the backend's calls take.
void print_profile(const gguf::ModelFiles& files, model::Backend& backend,
                   const std::vector<int32_t>& prompt, int n_gen, int batch, double bandwidth,
                   model::CacheType cache) {
  if (dynamic_cast<model::DeviceBackend*>(&backend))
    throw std::invalid_argument("--profile times the CPU backend's calls (--backend cpu)");
  model::ProfilingBackend profiler(backend);
  const int n_ctx = static_cast<int>(prompt.size()) + n_gen + 1;
  model::Transformer t(files, profiler, n_ctx, cache, batch, {});
  const Lockstep run = run_lockstep(t, prompt, n_gen, batch, [&] { profiler.clear(); });
  const double total = run.generation_seconds;
  std::vector<std::pair<std::string, model::ProfilingBackend::Op>> ops(profiler.ops().begin(),
                                                                       profiler.ops().end());
  std::sort(ops.begin(), ops.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  std::printf(
      "\nprofile of %d generation steps of %d token%s (%.3f ms per step; floor %.1f GB/s):\n",
      n_gen, batch, batch == 1 ? "" : "s", 1e3 * total / n_gen, bandwidth);
  std::printf("| op | calls/step | ms/step | share | GB/s |\n| --- | --- | --- | --- | --- |\n");
  double in_ops = 0;
  for (const auto& [name, op] : ops) {
    in_ops += op.seconds;
    char rate[32] = "";
    if (op.bytes > 0) std::snprintf(rate, sizeof rate, "%.1f", op.bytes / op.seconds / 1e9);
    std::printf("| %s | %.1f | %.3f | %.1f%% | %s |\n", name.c_str(), double(op.calls) / n_gen,
                1e3 * op.seconds / n_gen, 100.0 * op.seconds / total, rate);
  }
  std::printf("| argmax over the logits | %d | %.3f | %.1f%% | |\n", batch,
              1e3 * run.argmax_seconds / n_gen, 100.0 * run.argmax_seconds / total);
  const double outside = total - in_ops - run.argmax_seconds;
  std::printf(
      "| outside the backend (forward-pass bookkeeping, logits copy) | | %.3f | %.1f%% | |\n",
      1e3 * outside / n_gen, 100.0 * outside / total);
}

}  // namespace

int run_bench_e2e(const E2eBenchOptions& options) {
  const std::string* path = &options.model;
  const int n_prompt = options.n_prompt, n_gen = options.n_gen, threads = options.threads;
  const int repeat = options.repeat, batch = options.batch;
  if (n_prompt < 1 || n_gen < 1 || threads < 1 || repeat < 1 || batch < 1)
    throw std::invalid_argument("-p, -n, --threads, --repeat and --batch must be at least 1");

  long rss_before = resident_kib();
  gguf::ModelFiles files = gguf::ModelFiles::open(*path);
  model::BackendSpec spec = options.backend;
  spec.interleave = options.interleave;
  model::Backends backends = model::make_backends(spec);
  model::Transformer t(files, *backends.main, n_prompt + n_gen + 1, options.cache, batch,
                       backends.placement);
  const double weight_bytes = static_cast<double>(files.total_tensor_bytes());
  std::mt19937 rng(1);
  std::vector<int32_t> prompt(n_prompt);
  for (int32_t& id : prompt) id = static_cast<int32_t>(rng() % t.n_vocab());

  double best_pp = 0, best_tg = 0;
  for (int r = 0; r < repeat; ++r) {
    const Lockstep run = run_lockstep(t, prompt, n_gen, batch);
    best_pp = std::max(best_pp, batch * n_prompt / run.prompt_seconds);
    best_tg = std::max(best_tg, batch * n_gen / run.generation_seconds);
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
      double(t.hparams().kv_cache_bytes(n_prompt + n_gen + 1, batch, options.cache));
  // What a generation step reads: every weight once, and per sequence the keys and values of
  // the positions before its token (on average the prompt and half the generation; a long
  // context makes this count).
  const double kv_read =
      double(t.hparams().kv_cache_bytes(1, 1, options.cache)) * (n_prompt + n_gen / 2.0) * batch;
  const double step_bytes = weight_bytes + kv_read;
  const double floor_rate = batch * bandwidth * 1e9 / step_bytes;  // tokens/s
  std::printf("model: %s (%.0f MiB of weights), %s%s\n", path->c_str(), weight_bytes / (1 << 20),
              where.c_str(),
              batch > 1 ? (", " + std::to_string(batch) + " sequences in lockstep").c_str() : "");
  std::printf(
      "| prompt %d | generation %d | generation GB/s (weights + %.0f MiB KV read) | floor "
      "tokens/s (%.1f GB/s) | of floor |\n",
      n_prompt, n_gen, kv_read / (1 << 20), bandwidth);
  std::printf("| %.1f tokens/s | %.1f tokens/s | %.1f | %.1f | %.0f%% |\n", best_pp, best_tg,
              best_tg / batch * step_bytes / 1e9, floor_rate, 100.0 * best_tg / floor_rate);
  std::printf(
      "resident memory: %.0f MiB (weights %.0f MiB + KV cache %.1f MiB + other %.0f MiB; %.0f MiB "
      "before loading)\n",
      rss_after / 1024.0, weight_bytes / (1 << 20), kv_bytes / (1 << 20),
      rss_after / 1024.0 - weight_bytes / (1 << 20) - kv_bytes / (1 << 20), rss_before / 1024.0);
  if (options.profile)
    print_profile(files, *backends.main, prompt, n_gen, batch, bandwidth, options.cache);
  return 0;
}

}  // namespace ember::bench
