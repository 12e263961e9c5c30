#include "model/hparams.h"

#include <cmath>
#include <stdexcept>

namespace ember::model {
namespace {

[[noreturn]] void refuse(const std::string& key, const std::string& why) {
  throw std::runtime_error("'" + key + "' " + why);
}

// Keys (after "{arch}.") that would change the arithmetic in ways ember does not implement for
// any architecture: their presence is a load error rather than an answer computed without them.
constexpr const char* kUnsupportedKeys[] = {
    "attention.clamp_kqv",               // dbrx, mpt: clamping of q, k, v
    "attention.max_alibi_bias",          // ALiBi positions instead of RoPE
    "attention.layer_norm_epsilon",      // LayerNorm (with a mean) instead of RMS norm
    "attention.q_lora_rank",             // DeepSeek's multi-head latent attention
    "attention.kv_lora_rank",            //
    "logit_scale",                       // command-r: output logits scaled
    "residual_scale",                    // granite: residual branches scaled
    "embedding_scale",                   // granite: embeddings scaled
    "attention.scale",                   // granite: a fixed attention scale
    "rope.dimension_sections",           // multi-section (M-)RoPE of vision-language models
    "rope.scaling.yarn_log_multiplier",  // DeepSeek-style YaRN magnitude
    "expert_shared_count",               // DeepSeek-style shared experts
    "expert_weights_scale",              // routed-expert weights scaled
    "expert_gating_func",                // sigmoid routing
    "ssm.conv_kernel",                   // state-space layers (mamba)
};

}  // namespace

bool HyperParams::is_local_layer(int layer) const {
  if (sliding_window <= 0 || !spec) return false;
  switch (spec->window) {
    case WindowPattern::kEvenLayers:
      return layer % 2 == 0;
    case WindowPattern::kPeriodic:
      return swa_period > 0 && layer % swa_period < swa_period - 1;
    case WindowPattern::kNone:
    case WindowPattern::kUnused:
      return false;
  }
  return false;
}

HyperParams HyperParams::from_gguf(const gguf::Metadata& m) {
  HyperParams h;
  h.arch = std::string(m.require_string("general.architecture"));
  const std::string& a = h.arch;
  h.spec = find_architecture(a);
  if (!h.spec)
    throw std::runtime_error("architecture '" + a + "' is not supported (" + architecture_names() +
                             " are)");
  const ArchSpec& spec = *h.spec;
  auto key = [&](const char* name) { return a + "." + name; };
  auto has = [&](const char* name) { return m.find(key(name)) != nullptr; };
  auto need = [&](const char* name) { return static_cast<int>(m.require_int(key(name))); };
  auto opt_int = [&](const char* name, int fallback) {
    return static_cast<int>(m.get_int(key(name)).value_or(fallback));
  };
  auto opt_float = [&](const char* name, double fallback) {
    return static_cast<float>(m.get_double(key(name)).value_or(fallback));
  };

  for (const char* k : kUnsupportedKeys)
    if (has(k)) refuse(key(k), "changes how " + a + " computes in a way ember does not implement");

  h.n_embd = need("embedding_length");
  h.n_layer = need("block_count");
  h.n_head = need("attention.head_count");
  h.n_head_kv = opt_int("attention.head_count_kv", h.n_head);
  h.n_ff = opt_int("feed_forward_length", 0);
  h.n_ctx_train = opt_int("context_length", 4096);
  h.head_dim = opt_int("attention.key_length", h.n_head > 0 ? h.n_embd / h.n_head : 0);
  if (has("attention.value_length") && opt_int("attention.value_length", 0) != h.head_dim)
    refuse(key("attention.value_length"),
           "differs from the key length; ember needs keys and values of one width");
  if (const auto causal = m.get_bool(key("attention.causal")); causal && !*causal)
    refuse(key("attention.causal"), "is false: ember runs causal (decoder) attention only");
  h.rms_eps = opt_float("attention.layer_norm_rms_epsilon", 1e-5);
  h.attn_scale = h.head_dim > 0 ? 1.0f / std::sqrt(static_cast<float>(h.head_dim)) : 0;

  // What the architecture's table entry says.
  h.rope_style = spec.rope_style;
  h.activation = spec.activation;
  h.qkv_bias = spec.qkv_bias;
  h.qk_norm = spec.qk_norm;
  h.post_norms = spec.post_norms;
  if (spec.embed_scale) h.embed_scale = std::sqrt(static_cast<float>(h.n_embd));

  // Soft-caps.
  for (const char* k : {"attn_logit_softcapping", "final_logit_softcapping"})
    if (has(k) && !spec.softcaps)
      refuse(key(k), "is set, but ember's " + a + " has no soft-capping (gemma2 has)");
  if (spec.softcaps) {
    h.attn_softcap = opt_float("attn_logit_softcapping", 0);
    h.final_softcap = opt_float("final_logit_softcapping", 0);
  }
  // Gemma 2/3 27B scale queries by 1/sqrt(n_embd / n_head), their query_pre_attn_scalar, which
  // GGUF files do not carry (llama.cpp recognises the models by their layer count too).
  if (spec.wide_query_layers > 0 && h.n_layer == spec.wide_query_layers)
    h.attn_scale = 1.0f / std::sqrt(static_cast<float>(h.n_embd / h.n_head));

  // Sliding windows.
  if (spec.window == WindowPattern::kUnused) {
    // Written by converters, not applied (see WindowPattern::kUnused); rope.freq_base_swa or a
    // pattern would say the file means something else.
    for (const char* k : {"attention.sliding_window_pattern", "rope.freq_base_swa"})
      if (has(k)) refuse(key(k), "is set, but " + a + " has no sliding-window layers");
  } else if (spec.window == WindowPattern::kNone) {
    for (const char* k :
         {"attention.sliding_window", "attention.sliding_window_pattern", "rope.freq_base_swa"})
      if (has(k))
        refuse(key(k), "is set, but ember's " + a +
                           " has no sliding-window layers (gemma2 and gemma3 have)");
  } else {
    h.sliding_window = opt_int("attention.sliding_window", 0);
    if (spec.window == WindowPattern::kPeriodic)
      h.swa_period = opt_int("attention.sliding_window_pattern", 6);
    else if (has("attention.sliding_window_pattern"))
      refuse(key("attention.sliding_window_pattern"),
             "is set, but " + a + "'s local layers are the even ones");
  }

  // RoPE.
  h.n_rot = opt_int("rope.dimension_count", h.head_dim);
  h.rope_base = opt_float("rope.freq_base", 10000.0);
  h.rope_base_local =
      spec.window == WindowPattern::kNone || spec.window == WindowPattern::kUnused ? h.rope_base
      : has("rope.freq_base_swa") ? opt_float("rope.freq_base_swa", 0)
                                  : (spec.local_rope_base > 0 ? spec.local_rope_base : h.rope_base);
  std::string scaling = std::string(m.get_string(key("rope.scaling.type")).value_or("none"));
  if (has("rope.scale_linear")) {  // the older spelling of linear scaling
    scaling = "linear";
    h.rope_factor = opt_float("rope.scale_linear", 1);
  } else {
    h.rope_factor = opt_float("rope.scaling.factor", 1);
  }
  h.rope_ctx_orig = opt_int("rope.scaling.original_context_length", h.n_ctx_train);
  h.rope_attn_factor = opt_float("rope.scaling.attn_factor", 1);
  h.yarn_beta_fast = opt_float("rope.scaling.yarn_beta_fast", 32);
  h.yarn_beta_slow = opt_float("rope.scaling.yarn_beta_slow", 1);
  if (scaling == "none" || scaling == "longrope") {  // LongRoPE: factor tensors (weights.cpp)
    h.rope_scaling = RopeScaling::kNone;
  } else if (scaling == "linear") {
    h.rope_scaling = RopeScaling::kLinear;
  } else if (scaling == "yarn") {
    h.rope_scaling = RopeScaling::kYarn;
    if (const auto ext = m.get_double(key("rope.scaling.yarn_ext_factor")); ext && *ext != 1.0)
      refuse(key("rope.scaling.yarn_ext_factor"), "is not 1; ember implements YaRN's full ramp");
  } else {
    refuse(key("rope.scaling.type"),
           "is '" + scaling + "'; ember supports none, linear, yarn and LongRoPE factors");
  }
  if (h.rope_scaling != RopeScaling::kNone && !(h.rope_factor > 0))
    refuse(key("rope.scaling.factor"), "must be positive");

  // Experts.
  h.n_expert = opt_int("expert_count", 0);
  h.n_expert_used = opt_int("expert_used_count", 0);
  h.n_ff_expert = opt_int("expert_feed_forward_length", h.n_ff);
  if (h.n_expert > 0 && !spec.experts)
    refuse(key("expert_count"), "is set, but ember runs " + a + " as a dense model only");
  h.expert_weights_norm = m.get_bool(key("expert_weights_norm")).value_or(spec.expert_weights_norm);
  h.shared_expert = spec.shared_expert;

  if (h.n_embd <= 0 || h.n_layer <= 0 || h.n_head <= 0 || h.n_head_kv <= 0 || h.head_dim <= 0 ||
      h.n_head % h.n_head_kv != 0 || h.n_rot > h.head_dim || h.n_rot <= 0 || h.n_rot % 2 != 0)
    throw std::runtime_error("inconsistent attention shape in the " + a + ".* keys");
  if (h.n_expert > 0 && (h.n_expert_used <= 0 || h.n_expert_used > h.n_expert))
    throw std::runtime_error(a + ".expert_used_count must be between 1 and expert_count");
  return h;
}

}  // namespace ember::model
