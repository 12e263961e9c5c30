// How each architecture computes, as data: one table entry per architecture (architectures.cpp)
// that the loader (hparams.cpp, weights.cpp) and the forward pass (transformer.cpp) read. Adding
// an architecture is an entry here plus the few lines of the forward pass where it truly differs.
#pragma once

#include <string>
#include <string_view>

namespace ember::model {

enum class RopeStyle {
  kNormal,  // rotate interleaved pairs (x[2i], x[2i+1]): llama, mistral (q/k stored for it)
  kNeox,    // rotate halves (x[i], x[i + n_rot/2]): qwen2, qwen3, gemma, phi3
};

enum class Activation { kSilu, kGeluTanh };

// Which layers attend through a sliding window (`{arch}.attention.sliding_window` tokens).
enum class WindowPattern {
  kNone,        // every layer is global; a sliding_window key is refused
  kEvenLayers,  // gemma2: layers 0, 2, 4, ... are local, the odd ones global
  kPeriodic,  // gemma3: layer l is local when l % P < P − 1, P = attention.sliding_window_pattern
              // (default 6: five local layers, then a global one)
  kUnused,    // phi3: converters write a window (2047 for Phi-3-mini-4k, 0 for Phi-4) that is not
              // applied, as in llama.cpp (Microsoft's code applies it only with flash attention);
              // it could matter only beyond 2047 tokens
};

struct ArchSpec {
  const char* name;  // general.architecture
  RopeStyle rope_style;
  Activation activation;     // of the gated feed-forward
  bool qkv_bias;             // attn_{q,k,v}.bias (qwen2)
  bool qk_norm;              // per-head RMS norm of q and k before RoPE (qwen3, gemma3)
  bool post_norms;           // post_attention_norm / post_ffw_norm before the residual (gemma2/3)
  bool embed_scale;          // token embeddings × sqrt(n_embd) (the gemma family)
  bool fused_qkv;            // one attn_qkv tensor: q rows, then k, then v (phi3)
  bool fused_gate_up;        // ffn_up holds 2·n_ff rows: gate (through the activation), then up
  bool softcaps;             // attn_logit_softcapping and final_logit_softcapping (gemma2)
  WindowPattern window;      // sliding-window layers
  float local_rope_base;     // RoPE base of local layers without rope.freq_base_swa (0: global's)
  int wide_query_layers;     // with this many layers (the 27B models) queries scale by
                             // 1/sqrt(n_embd/n_head), their query_pre_attn_scalar (0: never)
  bool experts;              // may be a mixture of experts (expert_count > 0)
  bool shared_expert;        // qwen2moe: a shared expert gated by sigmoid(ffn_gate_inp_shexp·x)
  bool expert_weights_norm;  // default of expert_weights_norm: renormalise top-k weights to 1
};

// The entry for `general.architecture`, or nullptr.
const ArchSpec* find_architecture(std::string_view name);
// "llama, mistral, ..." for messages.
std::string architecture_names();

}  // namespace ember::model
