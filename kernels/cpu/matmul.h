// Products of a weight matrix with activations on the CPU, parallel over the pool's threads.
//
// Weights: `rows` rows of `cols` elements in the kernel's weight type (a GGUF tensor of shape
// [cols, rows]). Activations: float32, one row of `cols` per token. Output: float32, one row of
// `rows` per token.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"

namespace ember::cpu {

// From how many tokens matmul packs its operands (where the format has a packed kernel).
constexpr int64_t kPackedMinTokens = 8;
// The same for interleaved weights, whose tiles run 4 tokens at 350-600 GFLOP/s: below this
// they beat packing panels (decoded from the groups) that serve few tokens. Prompt tokens/s of
// the 1.1B models (session 10): Q4_0 16 tokens 229 with tiles against 84 packed, 64: 265 against
// 177, 128: 256 against 234; from 192 the packed panels are ahead (Q4_K_M 257 against 239).
constexpr int64_t kPackedMinTokensInterleaved = 128;

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
// `interleaved`: the weights are in k.interleaved's layout (groups of kInterleaveRows rows, then
// the rows left over as they were).
void matmul(const TypeKernels& k, const void* weights, int64_t rows, int64_t cols, const float* x,
            int64_t tokens, float* y, ThreadPool& pool, MatmulScratch& scratch,
            bool interleaved = false);

// Weights of `rows` × `cols` in k's type rewritten into k.interleaved's layout (`out` as many
// bytes as `weights`), split over the pool's threads. k.interleaved must be set.
void interleave(const TypeKernels& k, const void* weights, int64_t rows, int64_t cols, void* out,
                ThreadPool& pool);

// One of several products that share their input (matmul_shared): `rows` rows of weights in
// k->weight_type, output `tokens` rows of `rows` floats at y.
struct MatmulPart {
  const TypeKernels* k;
  const void* weights;
  int64_t rows;
  float* y;
  bool interleaved = false;  // weights in k->interleaved's layout
};

// Y_p = W_p·X for every part p, all with `cols` columns and the same activations (attention's q,
// k and v; the FFN's gate and up). Results are bit for bit those of matmul on each part. Where
// the parts share an activation format and no part takes the packed path, the activations are
// quantised once and every part's rows are split over the threads in one pass: small products
// (a few hundred KB each in a small model) then pay one wake-up and one quantisation, and each
// thread streams one contiguous run of weights.
void matmul_shared(std::span<const MatmulPart> parts, int64_t cols, const float* x, int64_t tokens,
                   ThreadPool& pool, MatmulScratch& scratch);

}  // namespace ember::cpu
