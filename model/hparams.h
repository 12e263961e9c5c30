// The hyper-parameters of a transformer, read from the GGUF keys "{arch}.*": the numbers of one
// model, next to its architecture's description (architectures.h). One struct, every field in
// the units the forward pass uses. Reading refuses any key that would change the arithmetic in a
// way ember does not implement (an unknown RoPE scaling, a soft-cap on an architecture without
// one, ...): a clear load error, never a silently different answer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "gguf/reader.h"
#include "model/architectures.h"
#include "model/cache_type.h"

namespace ember::model {

enum class RopeScaling {
  kNone,
  kLinear,  // positions × 1/factor
  kYarn,    // YaRN: interpolated and original angles mixed over the correction dims
};

struct HyperParams {
  std::string arch;                // general.architecture
  const ArchSpec* spec = nullptr;  // how the architecture computes
  int n_vocab = 0;                 // rows of token_embd
  int n_embd = 0;                  // width of the residual stream
  int n_layer = 0;                 // transformer blocks
  int n_head = 0;                  // query heads
  int n_head_kv = 0;               // key/value heads (GQA when < n_head, MQA when 1)
  int head_dim = 0;       // per head; n_embd / n_head unless attention.key_length says otherwise
  int n_ff = 0;           // hidden width of a dense feed-forward block
  int n_ctx_train = 0;    // context the model was trained for
  float rms_eps = 1e-5f;  // RMS norm epsilon
  RopeStyle rope_style = RopeStyle::kNormal;
  Activation activation = Activation::kSilu;
  float attn_scale = 0;     // multiplies q·k; 1/sqrt(head_dim) (gemma2 27B: 1/sqrt(n_embd/n_head))
  float embed_scale = 1;    // multiplies token embeddings (gemma: sqrt(n_embd))
  float attn_softcap = 0;   // > 0: attention logits s → c·tanh(s/c) after the scale (gemma2)
  float final_softcap = 0;  // > 0: output logits z → c·tanh(z/c) (gemma2)
  int sliding_window = 0;   // tokens a local layer attends to (0: none)
  int swa_period = 0;       // kPeriodic: layer l is local when l % swa_period < swa_period - 1
  bool qkv_bias = false;    // qwen2: biases on q, k, v
  bool qk_norm = false;     // qwen3, gemma3: RMS norm of each q and k head before RoPE
  bool post_norms = false;  // gemma2/3: norms on the attention and FFN outputs before the residual

  // RoPE. Each head's first n_rot dimensions rotate in pairs; pair i turns by position·θ_i with
  // θ_i = base^(−2i/n_rot), divided by a per-pair factor when the file has rope_freqs.weight
  // (Llama 3) or rope_factors_{short,long}.weight (LongRoPE), then scaled (rope.cpp).
  int n_rot = 0;                     // rope.dimension_count (≤ head_dim: partial rotation)
  float rope_base = 10000.0f;        // rope.freq_base (global layers)
  float rope_base_local = 10000.0f;  // sliding-window layers (gemma3: rope.freq_base_swa, 1e4)
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_factor = 1;       // rope.scaling.factor (linear, yarn)
  int rope_ctx_orig = 0;       // rope.scaling.original_context_length (yarn, LongRoPE)
  float rope_attn_factor = 1;  // rope.scaling.attn_factor: multiplies cos and sin
  float yarn_beta_fast = 32;   // rope.scaling.yarn_beta_fast: correction range, fast end
  float yarn_beta_slow = 1;    // rope.scaling.yarn_beta_slow: correction range, slow end

  // Mixture of experts.
  int n_expert = 0;                  // experts per MoE layer (0: dense)
  int n_expert_used = 0;             // experts each token is routed to
  int n_ff_expert = 0;               // hidden width of one expert
  bool expert_weights_norm = false;  // renormalise the top-k router weights to sum 1
  bool shared_expert = false;        // qwen2moe: a shared expert gated by sigmoid

  bool is_local_layer(int layer) const;

  // Reads and validates the keys of a supported architecture; throws std::runtime_error naming
  // the key, the unsupported value or architecture, and what ember supports.
  static HyperParams from_gguf(const gguf::Metadata& metadata);

  // Bytes of the KV cache the transformer allocates for n_seq sequences of n_ctx positions:
  // n_seq × n_ctx × n_layer × 2 (K and V) × n_head_kv·head_dim values of `cache` (f16 is the
  // server's default). What a deployment sizes memory by (`ember inspect --memory`).
  uint64_t kv_cache_bytes(int n_ctx, int n_seq, CacheType cache = CacheType::kF16) const {
    return uint64_t(n_seq) * uint64_t(n_ctx) * uint64_t(n_layer) * 2 *
           kv_bytes(cache, int64_t(n_head_kv) * head_dim);
  }
  // The context to run with when `wanted` positions are asked for: no more than the model was
  // trained for (where the file says).
  int context(int wanted) const { return n_ctx_train > 0 ? std::min(wanted, n_ctx_train) : wanted; }
};

}  // namespace ember::model
