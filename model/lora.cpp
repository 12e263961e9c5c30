#include "model/lora.h"

#include <stdexcept>

namespace ember::model {
namespace {

// The weights the forward pass multiplies through Transformer::linear, where adapters apply.
bool adaptable(const std::string& name) {
  if (name == "output.weight") return true;
  if (name.rfind("blk.", 0) != 0) return false;
  const std::string part = name.substr(name.find('.', 4) + 1);
  for (const char* p : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_qkv.weight",
                        "attn_output.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight",
                        "ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight"})
    if (part == p) return true;
  return false;
}

}  // namespace

std::shared_ptr<const LoraAdapter> LoraAdapter::open(const std::string& path,
                                                     const gguf::ModelFiles& base,
                                                     const HyperParams& hp) {
  auto adapter = std::shared_ptr<LoraAdapter>(new LoraAdapter());
  adapter->path_ = path;
  adapter->files_ = std::make_unique<gguf::ModelFiles>(gguf::ModelFiles::open(path));
  const gguf::ModelFiles& f = *adapter->files_;
  const gguf::Metadata& m = f.metadata();
  auto fail = [&](const std::string& why) -> std::runtime_error {
    return std::runtime_error(path + ": " + why);
  };
  if (m.get_string("general.type").value_or("adapter") != "adapter" ||
      m.get_string("adapter.type").value_or("") != "lora")
    throw fail("not a LoRA adapter (general.type 'adapter' and adapter.type 'lora' expected)");
  const std::string arch(m.get_string("general.architecture").value_or(""));
  if (arch != hp.arch)
    throw fail("an adapter for architecture '" + arch + "' cannot apply to a " + hp.arch +
               " model");
  const float alpha = static_cast<float>(m.get_double("adapter.lora.alpha").value_or(0));
  // Activated LoRA engages only after its invocation tokens; applying it everywhere would be a
  // different answer.
  for (const gguf::KeyValue& kv : m.entries())
    if (kv.key.starts_with("adapter.alora."))
      throw fail("'" + std::string(kv.key) +
                 "': activated LoRA (aLoRA) adapters are not supported, only plain LoRA");

  // Pair NAME.lora_a with NAME.lora_b and check both against the base tensor NAME.
  std::map<std::string, std::pair<const gguf::TensorInfo*, const gguf::TensorInfo*>> found;
  for (const gguf::TensorInfo& t : f.tensors()) {
    const std::string name(t.name);
    const bool is_a = name.ends_with(".lora_a"), is_b = name.ends_with(".lora_b");
    if (!is_a && !is_b) throw fail("tensor '" + name + "' is not a lora_a or lora_b tensor");
    auto& slot = found[name.substr(0, name.size() - 7)];
    (is_a ? slot.first : slot.second) = &t;
  }
  for (const auto& [name, ab] : found) {
    const auto [a, b] = ab;
    if (!a || !b) throw fail("'" + name + "' has only one of lora_a and lora_b");
    const gguf::TensorInfo* w = base.find_tensor(name);
    if (!w) throw fail("adapts '" + name + "', which the base model does not have");
    if (!adaptable(name) || w->n_dims != 2)
      throw fail("adapts '" + name +
                 "'; ember applies adapters to the attention and feed-forward projections and "
                 "the output matrix only");
    const uint64_t n_in = w->shape[0], n_out = w->shape[1], rank = a->shape[1];
    if (a->n_dims != 2 || b->n_dims != 2 || a->shape[0] != n_in || b->shape[0] != rank ||
        b->shape[1] != n_out || rank == 0)
      throw fail("the shapes of '" + name + "'s lora_a [" + std::to_string(a->shape[0]) + ", " +
                 std::to_string(a->shape[1]) + "] and lora_b [" + std::to_string(b->shape[0]) +
                 ", " + std::to_string(b->shape[1]) + "] do not fit the base tensor [" +
                 std::to_string(n_in) + ", " + std::to_string(n_out) +
                 "]: the adapter was made for another model");
    Pair p{Weight{a}, Weight{b}, alpha > 0 ? alpha / static_cast<float>(rank) : 1.0f};
    adapter->pairs_.emplace(name, p);
  }
  if (adapter->pairs_.empty()) throw fail("the adapter adapts no tensor");
  return adapter;
}

const LoraAdapter::Pair* LoraAdapter::find(std::string_view name) const {
  auto it = pairs_.find(name);
  return it == pairs_.end() ? nullptr : &it->second;
}

std::pair<std::string, float> parse_lora_spec(const std::string& spec) {
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon + 1 == spec.size()) return {spec, 1.0f};
  const std::string scale = spec.substr(colon + 1);
  try {
    size_t used = 0;
    const float s = std::stof(scale, &used);
    if (used == scale.size()) return {spec.substr(0, colon), s};
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("'" + spec + "': the scale after ':' must be a number");
}

}  // namespace ember::model
