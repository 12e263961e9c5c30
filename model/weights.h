// The weights of a transformer as views into the mapped GGUF file, with their shapes checked
// against the hyper-parameters when the model is opened. GGUF shapes are [n_in, n_out]: a
// matrix of `rows` = n_out rows, each a contiguous row of n_in elements.
#pragma once

#include <vector>

#include "gguf/model_files.h"
#include "model/hparams.h"

namespace ember::model {

struct Weight {
  const gguf::TensorInfo* info = nullptr;
  explicit operator bool() const { return info != nullptr; }
  gguf::TensorType type() const { return info->type; }
  int64_t cols() const { return static_cast<int64_t>(info->shape[0]); }  // input length
  int64_t rows() const { return static_cast<int64_t>(info->shape[1]); }  // outputs (per expert)
  const float* floats() const { return reinterpret_cast<const float*>(info->data); }  // F32 vectors
};

struct LayerWeights {
  Weight attn_norm;       // [n_embd] F32
  Weight wq, wk, wv;      // [n_embd, n_head·head_dim], [n_embd, n_head_kv·head_dim] ×2
  Weight bq, bk, bv;      // qwen2: biases of q, k, v
  Weight q_norm, k_norm;  // qwen3/gemma3: [head_dim] F32, per-head RMS norm
  Weight wo;              // [n_head·head_dim, n_embd]
  Weight post_attn_norm;  // gemma3: [n_embd]
  Weight ffn_norm;        // [n_embd]
  Weight ffn_gate, ffn_up, ffn_down;  // dense: [n_embd, n_ff] ×2, [n_ff, n_embd]
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
  std::vector<LayerWeights> layers;

  // Resolves every tensor the architecture needs; throws std::runtime_error naming a missing or
  // misshapen tensor.
  static ModelWeights resolve(const gguf::ModelFiles& files, const HyperParams& hp);
};

}  // namespace ember::model
