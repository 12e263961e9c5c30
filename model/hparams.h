// The hyper-parameters of a transformer, read from the GGUF keys "{arch}.*", and what differs
// between the architectures ember runs. One struct, every field in the units the forward pass
// uses.
#pragma once

#include <string>

#include "gguf/reader.h"

namespace ember::model {

enum class RopeStyle {
  kNormal,  // rotate interleaved pairs (x[2i], x[2i+1]): llama, mistral (q/k stored for it)
  kNeox,    // rotate halves (x[i], x[i + n_rot/2]): qwen2, qwen3, gemma3
};
enum class Activation { kSilu, kGeluTanh };

struct HyperParams {
  std::string arch;       // general.architecture
  int n_vocab = 0;        // rows of token_embd
  int n_embd = 0;         // width of the residual stream
  int n_layer = 0;        // transformer blocks
  int n_head = 0;         // query heads
  int n_head_kv = 0;      // key/value heads (GQA when < n_head, MQA when 1)
  int head_dim = 0;       // per head; n_embd / n_head unless attention.key_length says otherwise
  int n_ff = 0;           // hidden width of a dense feed-forward block
  int n_ctx_train = 0;    // context the model was trained for
  int n_rot = 0;          // dimensions of each head that RoPE rotates (rope.dimension_count)
  float rms_eps = 1e-5f;  // RMS norm epsilon
  float rope_base = 10000.0f;        // RoPE frequency base (global layers)
  float rope_base_local = 10000.0f;  // RoPE base of sliding-window layers (gemma3)
  RopeStyle rope_style = RopeStyle::kNormal;
  Activation activation = Activation::kSilu;
  float attn_scale = 0;     // multiplies q·k; 1/sqrt(head_dim)
  float embed_scale = 1;    // multiplies token embeddings (gemma: sqrt(n_embd))
  int sliding_window = 0;   // tokens a local layer attends to (0: none)
  int swa_period = 0;       // layer l is local when l % swa_period < swa_period - 1 (0: none)
  bool qkv_bias = false;    // qwen2: biases on q, k, v
  bool qk_norm = false;     // qwen3, gemma3: RMS norm of each q and k head before RoPE
  bool post_norms = false;  // gemma3: norms on the attention and FFN outputs before the residual
  // Mixture of experts.
  int n_expert = 0;                  // experts per MoE layer (0: dense)
  int n_expert_used = 0;             // experts each token is routed to
  int n_ff_expert = 0;               // hidden width of one expert
  bool expert_weights_norm = false;  // renormalise the top-k router weights to sum 1
  bool shared_expert = false;        // qwen2moe: a shared expert gated by sigmoid

  bool is_local_layer(int layer) const {
    return sliding_window > 0 && swa_period > 0 && layer % swa_period < swa_period - 1;
  }

  // Reads and validates the keys of a supported architecture; throws std::runtime_error naming
  // the key or the unsupported architecture.
  static HyperParams from_gguf(const gguf::Metadata& metadata);
};

}  // namespace ember::model
