// Causal attention of a block of query tokens of one sequence over one KV head of the cache, as
// the CPU backend calls it: flash-style, keys in chunks of kAttentionChunk positions with an
// online softmax, so each cached key and value row is read (and converted from F16) once per
// block rather than once per query token. A query's result depends only on its own position and
// the cache, never on which block it came in (chunks start at absolute positions), so batched
// and token-by-token decoding agree bit for bit.
#pragma once

#include <cstdint>

#include "gguf/types.h"
#include "kernels/cpu/cpu_features.h"

namespace ember::cpu {

constexpr int kAttentionChunk = 64;  // key positions per step
constexpr int kAttentionBlock = 32;  // query tokens per call, at most

struct AttentionBlock {
  // Queries: token b (0 ≤ b < n_tokens), head h (0 ≤ h < group) at q + b·q_stride + h·head_dim.
  const float* q;
  int64_t q_stride;
  const int32_t* positions;  // of each token; keys 0..positions[b] (within `window`) are seen
  int n_tokens, group, head_dim;
  // This KV head's cached rows: key/value of position j at k/v + j·row_stride elements, in F32,
  // F16 or Q8_0 (kv_type; for Q8_0 row_stride and head_dim are multiples of its 32-value
  // blocks, and an element offset e is the byte offset e / 32 · 34).
  const void* k;
  const void* v;
  int64_t row_stride;
  gguf::TensorType kv_type = gguf::TensorType::F16;
  int window;  // > 0: only the last `window` positions
  float scale;
  float softcap = 0;  // > 0: scores s·scale → softcap·tanh(s·scale / softcap) (gemma2)
  // Output: token b, head h at out + b·out_stride + h·head_dim.
  float* out;
  int64_t out_stride;
  // The block this thread runs next, if any: its first rows are asked for while this block's
  // last chunks run (a hint; results do not depend on it).
  const AttentionBlock* next = nullptr;
};

// Per-thread buffers, reused between calls.
struct AttentionScratch {
  float* keys = nullptr;  // converted chunk of keys and values, and per-query state
  int64_t capacity = 0;
  AttentionScratch() = default;
  AttentionScratch(AttentionScratch&& other) noexcept : keys(other.keys), capacity(other.capacity) {
    other.keys = nullptr;
    other.capacity = 0;
  }
  AttentionScratch(const AttentionScratch&) = delete;
  AttentionScratch& operator=(const AttentionScratch&) = delete;
  ~AttentionScratch();
  float* reserve(int64_t floats);
};

using AttentionFn = void (*)(const AttentionBlock& block, AttentionScratch& scratch);
// The plain version (the specification) and the best this CPU runs.
void attention_reference(const AttentionBlock& block, AttentionScratch& scratch);
AttentionFn attention_kernel(Isa isa);
inline AttentionFn attention_kernel() {
  return attention_kernel(best_isa());
}

}  // namespace ember::cpu
