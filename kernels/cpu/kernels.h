// What the CPU backend computes with, per weight type: the format activations are quantised to,
// and the dot product of a weight row with such an activation row. Chosen at run time for the
// CPU's instruction set (cpu_features.h); every entry has a scalar fallback.
#pragma once

#include <cstdint>

#include "gguf/types.h"
#include "kernels/cpu/cpu_features.h"

namespace ember::cpu {

struct DecodedRow;  // decoded_rows.h

// Σ_i w_i·a_i over n elements: w a row of weights in the kernel's weight type, a a row of
// activations in its act_type. n is a multiple of both types' block sizes.
using VecDotFn = float (*)(int64_t n, const void* weights, const void* activations);
// A tile of products: out[t·out_stride + r] = Σ_i w_r[i]·a_t[i] for kTileRows consecutive weight
// rows (row r at weights + r·row_bytes) and `tokens` (1..kTileTokens) activation rows (row t at
// activations + t·act_bytes). Each weight block is decoded once for all tokens of the tile.
constexpr int kTileRows = 4;
constexpr int kTileTokens = 4;
using DotTileFn = void (*)(int64_t n, const void* weights, size_t row_bytes,
                           const void* activations, size_t act_bytes, int tokens, float* out,
                           size_t out_stride);
// Packed products for prompt processing, where a format has them (else nullptr and matmul uses
// dot_tile). Activations (act_type rows, token_group at a time) and weight panels (panel_rows
// rows) are first rewritten into the layout the kernel streams — integer values ready for the
// int8 dot instruction, scales already widened — so that the inner loop is only multiply-adds.
// Results are bit for bit those of vec_dot. Works when cols is a multiple of block_elems.
struct PackedGemm {
  int64_t block_elems;  // cols granularity
  int panel_rows;       // weight rows per packed panel
  int token_group;      // tokens per packed group of activations
  int64_t token_block;  // tokens each panel is used for before the next is packed (a multiple
                        // of token_group: their packed activations stay in cache)
  size_t (*act_bytes)(int64_t cols);  // one packed group
  // `tokens` (1..token_group) act_type rows, act_stride bytes apart, into one group.
  void (*pack_act)(const void* act_rows, size_t act_stride, int tokens, int64_t cols, void* packed);
  size_t (*panel_bytes)(int64_t cols);  // one packed panel
  void (*pack_panel)(const void* weights, size_t row_bytes, int64_t cols, void* panel);
  // Block `block` of a panel from its panel_rows rows already decoded (interleaved weights).
  void (*pack_block)(const DecodedRow* rows, int64_t block, void* panel);
  // out[t·out_stride + r] for the panel's rows and `tokens` tokens from consecutive packed groups.
  void (*panel_gemm)(const void* panel, int64_t cols, const void* packed_act, int64_t tokens,
                     float* out, size_t out_stride);
};

// Generation over weights interleaved at load: groups of kInterleaveRows rows rewritten block by
// block into the same number of bytes in another order — the group's kInterleaveRows scales of
// block i together, and their values arranged so that each 32-bit lane of a 512-bit vector
// holds four values of one row. One int8 dot instruction then advances all rows of the group
// against four activations broadcast to every lane, and the rows' scales load as one vector: no
// per-row horizontal sums and no scalar scale gathering. Each (row, block) still gets exactly
// the integers of vec_dot and the same float operations, so results are bit for bit vec_dot's.
// Rows past the last whole group stay as they were, after the groups.
constexpr int kInterleaveRows = 16;
// Groups per InterleavedKernels::tile call: 8 groups of a 4096-column Q4_0 matrix (295 KB) stay
// in a core's L2 cache while the call's token tiles after the first read them again.
constexpr int kInterleaveTileGroups = 8;
struct InterleavedKernels {
  // Rows [0, kInterleaveRows) of `cols` elements (row_bytes apart) into one group of as many
  // bytes, and back.
  void (*repack)(const void* rows, size_t row_bytes, int64_t cols, void* group);
  void (*unpack)(const void* group, int64_t cols, void* rows, size_t row_bytes);
  // Block `block` of the group's rows [first, first + count) decoded as the packed products take
  // them (PackedGemm), into rows[0, count).
  void (*decode)(const void* group, int64_t block, int first, int count, DecodedRow* rows);
  // out[t·out_stride + 16g + r] = Σ_i w_{g,r}[i]·a_t[i] for row r of `groups` (1..
  // kInterleaveTileGroups) consecutive groups and `tokens` (1..kTileTokens) activation rows
  // act_bytes apart. What depends only on the activations is computed once for all the groups.
  void (*tile)(int64_t n, int64_t groups, const void* group, const void* activations,
               size_t act_bytes, int tokens, float* out, size_t out_stride);
};

using QuantizeRowFn = void (*)(const float* x, void* y, int64_t n);
using DequantizeRowFn = void (*)(const void* x, float* y, int64_t n);

struct TypeKernels {
  gguf::TensorType weight_type;
  gguf::TensorType act_type;   // F32 for float weights; Q8_0 or Q8_K for quantised ones
  QuantizeRowFn quantize_act;  // float activations → act_type
  VecDotFn vec_dot;
  DotTileFn dot_tile;
  DequantizeRowFn dequantize;        // weights → float (embedding rows, tests)
  Isa isa;                           // the level vec_dot was compiled for
  const PackedGemm* gemm = nullptr;  // prompt processing in packed form, where available
  // Generation over interleaved weights, where available (with `gemm`, whose panels are then
  // unpacked from the groups).
  const InterleavedKernels* interleaved = nullptr;
};

// Kernels for weights of `type` at the given level (or the best level below it that has them);
// nullptr when ember cannot compute with that type.
const TypeKernels* find_kernels(gguf::TensorType type, Isa isa);
inline const TypeKernels* find_kernels(gguf::TensorType type) {
  return find_kernels(type, best_isa());
}

// The activation format quantised weights of `type` are multiplied with.
gguf::TensorType activation_type(gguf::TensorType type);

// Float vector primitives (attention over the KV cache, the gated FFN's activation), per
// instruction-set level.
struct VectorOps {
  void (*fp16_to_f32)(const uint16_t* x, float* y, int64_t n);
  void (*f32_to_fp16)(const float* x, uint16_t* y, int64_t n);
  float (*dot)(const float* x, const float* y, int64_t n);
  void (*axpy)(float a, const float* x, float* y, int64_t n);  // y += a·x
  // out[i] = act(gate[i])·up[i] (out may be gate): SiLU x/(1 + e^−x), and GELU in its tanh form
  // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) as GPT-2 and Gemma define it. The SIMD levels use
  // a polynomial e^x (relative error < 2e-7) and agree with the scalar level to about 1e-6.
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
  void (*gelu_mul)(const float* gate, const float* up, float* out, int64_t n);
  // The index of the first largest of x[0..n) (greedy sampling over the logits), NaNs skipped;
  // 0 when n is 0 or every value is NaN. std::max_element's answer where x holds no NaN.
  int64_t (*argmax)(const float* x, int64_t n);
};
const VectorOps& vector_ops(Isa isa);
inline const VectorOps& vector_ops() {
  return vector_ops(best_isa());
}

}  // namespace ember::cpu
