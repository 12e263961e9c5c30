// Benchmarks reachable as `ember bench ...` (the CLI parses the options, server/cli/bench.cpp).
// Speed is measured here, never in unit tests. Each function prints a Markdown table on stdout
// and throws std::invalid_argument for an option it cannot honour (an unknown type, a kernel
// level this CPU lacks), which the CLI reports as a usage error.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/backends/make_backend.h"

namespace ember::bench {

// `ember bench kernels`: memory bandwidth, then matvec GB/s and matmul GFLOP/s per weight type.
struct KernelBenchOptions {
  int threads = 0;                                         // 0: every hardware thread
  std::vector<std::string> types{"Q4_0", "Q4_K", "Q8_0"};  // ggml type names, or {"all"}
  long long tokens = 128;                                  // activation columns of the matmul
  std::optional<std::string> isa;  // kernel level, e.g. "avx2"; best by default
  std::string backend = "cpu";     // or "vulkan", "opencl": the same table for a device
  int device = -1;                 // that API's device (gpu-info's numbering; −1: the first GPU)
};
int run_bench_kernels(const KernelBenchOptions& options);
int run_bench_kernels_device(const KernelBenchOptions& options);  // bench_kernels_device.cpp

// `ember bench e2e`: prompt processing and generation tokens/s of one sequence (or of `batch`
// in lockstep), achieved GB/s next to the bandwidth floor, resident memory.
struct E2eBenchOptions {
  std::string model;  // GGUF file
  int n_prompt = 512;
  int n_gen = 128;
  int threads = 2;
  int repeat = 3;              // best of
  model::BackendSpec backend;  // the CPU here; the CLI passes what --backend chose (auto: as serve)
  model::CacheType cache = model::CacheType::kF16;  // --cache-type
  // Also one more generation through model::ProfilingBackend: time, calls and bytes per token
  // for each kind of operation (matrix products by weight), and what is spent outside them.
  bool profile = false;
  bool interleave = true;  // --no-interleave: the CPU backend reads weights as mapped
  // --batch N: N sequences with the same prompt generate in lockstep, one token each per step, as
  // N streams of `ember serve` do; generation tokens/s is then their aggregate.
  int batch = 1;
};
int run_bench_e2e(const E2eBenchOptions& options);

// `ember bench grammar --model FILE [--threads N] [-n N]`: the cost of structured output's token
// mask per step, and generation's tokens/s with and without a JSON schema.
int run_bench_grammar(const std::string& model, int threads, int n_gen);

// `ember bench speculative`: greedy generation with speculative decoding off and at each guess
// count, on prompts whose answers repeat them and one whose answer does not.
struct SpeculativeBenchOptions {
  std::string model;              // GGUF file
  std::string draft_model;        // guesses from this model (draft_model.h); empty: prompt lookup
  std::vector<int> counts{4, 8};  // --speculative: guesses per step to measure
  int n_gen = 128;
  int repeat = 3;     // best of
  bool chat = false;  // the prompts through the model's chat template
  model::BackendSpec backend;
  model::CacheType cache = model::CacheType::kF16;  // --cache-type, for both models
};
int run_bench_speculative(const SpeculativeBenchOptions& options);

// `ember bench make-model`: a TinyLlama-1.1B- or Llama-2-7B-shaped model with random weights.
struct MakeModelOptions {
  std::string type = "Q4_0";  // Q4_0, Q8_0 or Q4_K_M
  std::string shape = "1b";   // "1b" (TinyLlama 1.1B) or "7b" (Llama 2 7B)
  std::string out;            // file to write
  int threads = 2;
};
int run_make_model(const MakeModelOptions& options);

}  // namespace ember::bench
