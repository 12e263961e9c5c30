// The weights of a transformer as views into the mapped GGUF file, with their shapes checked
// against the hyper-parameters when the model is opened. GGUF shapes are [n_in, n_out]: a
// matrix of `rows` = n_out rows, each a contiguous row of n_in elements. Every tensor of the file
// must be used: one the architecture does not read is a load error naming it (a silently
// different answer is worse than none).
#pragma once

#include <vector>

#include "gguf/model_files.h"
#include "model/hparams.h"

namespace ember::model {

struct Weight {
  const gguf::TensorInfo* info = nullptr;
  int64_t first_row = 0;  // a slice of a fused tensor's rows (phi3's attn_qkv, ffn_up) ...
  int64_t n_rows = 0;     // ... of this many rows; 0: every row
  explicit operator bool() const { return info != nullptr; }
  gguf::TensorType type() const { return info->type; }
  int64_t cols() const { return static_cast<int64_t>(info->shape[0]); }  // input length
  int64_t rows() const {                                                 // outputs (per expert)
    return n_rows ? n_rows : static_cast<int64_t>(info->shape[1]);
  }
  const uint8_t* data() const {  // the first row (of the slice)
    return info->data + first_row * static_cast<int64_t>(gguf::bytes_for(type(), cols()));
  }
  const float* floats() const { return reinterpret_cast<const float*>(data()); }  // F32 vectors
  // Rows [first, first + count) of a 2-D weight.
  Weight slice(int64_t first, int64_t count) const { return {info, first_row + first, count}; }
};

struct LayerWeights {
  Weight attn_norm;       // [n_embd] F32
  Weight wq, wk, wv;      // [n_embd, n_head·head_dim], [n_embd, n_head_kv·head_dim] ×2
                          // (phi3: row slices of one attn_qkv tensor)
  Weight bq, bk, bv;      // qwen2: biases of q, k, v
  Weight q_norm, k_norm;  // qwen3/gemma3: [head_dim] F32, per-head RMS norm
  Weight wo;              // [n_head·head_dim, n_embd]
  Weight post_attn_norm;  // gemma3: [n_embd]
  Weight ffn_norm;        // [n_embd]
  Weight ffn_gate, ffn_up, ffn_down;  // dense: [n_embd, n_ff] ×2, [n_ff, n_embd]
                                      // (phi3: gate and up are halves of one ffn_up tensor)
  Weight post_ffn_norm;               // gemma3: [n_embd]
  Weight ffn_gate_inp;                // MoE router: [n_embd, n_expert]
  Weight ffn_gate_exps, ffn_up_exps;  // [n_embd, n_ff_expert, n_expert]
  Weight ffn_down_exps;               // [n_ff_expert, n_embd, n_expert]
  Weight ffn_gate_inp_shexp;          // qwen2moe: [n_embd], the shared expert's gate
  Weight ffn_gate_shexp, ffn_up_shexp, ffn_down_shexp;  // the shared expert
};

struct ModelWeights {
  Weight token_embd;   // [n_embd, n_vocab]
  Weight output_norm;  // [n_embd]
  Weight output;       // [n_embd, n_vocab]; token_embd when the embeddings are tied
  // RoPE frequency divisors, [n_rot / 2] F32 each (rope.h): Llama 3's rope_freqs, LongRoPE's
  // factors for contexts up to / beyond rope.scaling.original_context_length.
  Weight rope_freqs, rope_factors_short, rope_factors_long;
  std::vector<LayerWeights> layers;

  // Resolves every tensor the architecture needs; throws std::runtime_error naming a missing or
  // misshapen tensor.
  static ModelWeights resolve(const gguf::ModelFiles& files, const HyperParams& hp);
};

}  // namespace ember::model
