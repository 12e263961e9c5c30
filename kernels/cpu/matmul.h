// Products of a weight matrix with activations on the CPU, parallel over the pool's threads.
//
// Weights: `rows` rows of `cols` elements in the kernel's weight type (a GGUF tensor of shape
// [cols, rows]). Activations: float32, one row of `cols` per token. Output: float32, one row of
// `rows` per token.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"

namespace ember::cpu {

// From how many tokens matmul packs its operands (where the format has a packed kernel).
constexpr int64_t kPackedMinTokens = 8;

// Holds the quantised activations between calls, so steady-state calls allocate nothing.
struct MatmulScratch {
  std::vector<uint8_t> activations;
  std::vector<uint8_t> packed;               // packed activations (TypeKernels::gemm)
  std::vector<std::vector<uint8_t>> panels;  // one packed weight panel per thread
};

// y[r] = Σ_c W[r][c]·x[c]: one token (generation).
void matvec(const TypeKernels& k, const void* weights, int64_t rows, int64_t cols, const float* x,
            float* y, ThreadPool& pool, MatmulScratch& scratch);

// Y[t][r] = Σ_c W[r][c]·X[t][c] for `tokens` tokens (prompt processing). Each weight row is read
// from memory once and used for every token while it sits in cache.
void matmul(const TypeKernels& k, const void* weights, int64_t rows, int64_t cols, const float* x,
            int64_t tokens, float* y, ThreadPool& pool, MatmulScratch& scratch);

}  // namespace ember::cpu
