#include "model/hparams.h"

#include <cmath>
#include <stdexcept>

namespace ember::model {

HyperParams HyperParams::from_gguf(const gguf::Metadata& m) {
  HyperParams h;
  h.arch = std::string(m.require_string("general.architecture"));
  const std::string& a = h.arch;
  auto key = [&](const char* name) { return a + "." + name; };
  auto need = [&](const char* name) { return static_cast<int>(m.require_int(key(name))); };
  auto opt_int = [&](const char* name, int fallback) {
    return static_cast<int>(m.get_int(key(name)).value_or(fallback));
  };
  auto opt_float = [&](const char* name, double fallback) {
    return static_cast<float>(m.get_double(key(name)).value_or(fallback));
  };

  if (a != "llama" && a != "qwen2" && a != "qwen3" && a != "gemma3" && a != "qwen2moe" &&
      a != "qwen3moe" && a != "mistral")
    throw std::runtime_error(
        "architecture '" + a +
        "' is not supported (llama, mistral, qwen2, qwen3, gemma3, qwen2moe, qwen3moe are)");

  h.n_embd = need("embedding_length");
  h.n_layer = need("block_count");
  h.n_head = need("attention.head_count");
  h.n_head_kv = opt_int("attention.head_count_kv", h.n_head);
  h.n_ff = opt_int("feed_forward_length", 0);
  h.n_ctx_train = opt_int("context_length", 4096);
  h.head_dim = opt_int("attention.key_length", h.n_head > 0 ? h.n_embd / h.n_head : 0);
  h.n_rot = opt_int("rope.dimension_count", h.head_dim);
  h.rms_eps = opt_float("attention.layer_norm_rms_epsilon", 1e-5);
  h.rope_base = opt_float("rope.freq_base", 10000.0);
  h.rope_base_local = h.rope_base;
  h.n_expert = opt_int("expert_count", 0);
  h.n_expert_used = opt_int("expert_used_count", 0);
  h.n_ff_expert = opt_int("expert_feed_forward_length", h.n_ff);
  h.attn_scale = h.head_dim > 0 ? 1.0f / std::sqrt(static_cast<float>(h.head_dim)) : 0;

  if (a == "qwen2" || a == "qwen2moe") {
    h.rope_style = RopeStyle::kNeox;
    h.qkv_bias = true;
  }
  if (a == "qwen3" || a == "qwen3moe") {
    h.rope_style = RopeStyle::kNeox;
    h.qk_norm = true;
  }
  if (a == "gemma3") {
    h.rope_style = RopeStyle::kNeox;
    h.qk_norm = true;
    h.post_norms = true;
    h.activation = Activation::kGeluTanh;
    h.embed_scale = std::sqrt(static_cast<float>(h.n_embd));
    h.sliding_window = opt_int("attention.sliding_window", 0);
    h.swa_period =
        opt_int("attention.sliding_window_pattern", 6);  // five local layers, then a global one
    h.rope_base_local = opt_float("rope.freq_base_swa", 10000.0);
  }
  // Mixtral-style experts in llama renormalise the top-k weights; qwen2moe does not, qwen3moe does.
  h.expert_weights_norm = m.get_bool(key("expert_weights_norm"))
                              .value_or(a == "llama" || a == "qwen3moe" || a == "mistral");
  h.shared_expert = a == "qwen2moe";

  if (h.n_embd <= 0 || h.n_layer <= 0 || h.n_head <= 0 || h.n_head_kv <= 0 || h.head_dim <= 0 ||
      h.n_head % h.n_head_kv != 0 || h.n_rot > h.head_dim || h.n_rot % 2 != 0)
    throw std::runtime_error("inconsistent attention shape in the " + a + ".* keys");
  if (h.n_expert > 0 && (h.n_expert_used <= 0 || h.n_expert_used > h.n_expert))
    throw std::runtime_error(a + ".expert_used_count must be between 1 and expert_count");
  return h;
}

}  // namespace ember::model
