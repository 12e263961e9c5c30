#include "model/weights.h"

#include <set>
#include <stdexcept>
#include <string>

namespace ember::model {
namespace {

class Resolver {
 public:
  explicit Resolver(const gguf::ModelFiles& files) : files_(files) {}

  // The tensor `name` with exactly `shape` (trailing 1s may be left out), or nothing when it is
  // absent and not `required`.
  Weight get(const std::string& name, std::vector<int64_t> shape, bool required = true) {
    const gguf::TensorInfo* t = files_.find_tensor(name);
    if (!t) {
      if (required) throw std::runtime_error("the model has no tensor '" + name + "'");
      return {};
    }
    used_.insert(name);
    for (size_t d = 0; d < 4; ++d) {
      int64_t want = d < shape.size() ? shape[d] : 1;
      if (static_cast<int64_t>(t->shape[d]) != want) {
        std::string got, expected;
        for (size_t i = 0; i < 4; ++i) got += (i ? "," : "") + std::to_string(t->shape[i]);
        for (size_t i = 0; i < 4; ++i)
          expected += (i ? "," : "") + std::to_string(i < shape.size() ? shape[i] : 1);
        throw std::runtime_error("tensor '" + name + "' has shape [" + got + "], expected [" +
                                 expected + "]");
      }
    }
    return Weight{t};
  }
  Weight vector(const std::string& name, int64_t n, bool required = true) {
    Weight w = get(name, {n}, required);
    if (w && w.type() != gguf::TensorType::F32)
      throw std::runtime_error("tensor '" + name + "' must be F32, it is " +
                               std::string(gguf::type_name(w.type())));
    return w;
  }

  // Every tensor of the file was read by the architecture, or is one that does not change the
  // text model's arithmetic (a vision tower stored in the same file: images are refused at the
  // API). Anything else is refused by name.
  void check_all_used(const std::string& arch) const {
    for (const gguf::TensorInfo& t : files_.tensors()) {
      const std::string name(t.name);
      if (used_.count(name) || name.rfind("v.", 0) == 0 || name.rfind("mm.", 0) == 0) continue;
      throw std::runtime_error("tensor '" + name + "' is not used by ember's " + arch +
                               ", and the model would compute something else without it");
    }
  }

 private:
  const gguf::ModelFiles& files_;
  std::set<std::string> used_;
};

}  // namespace

ModelWeights ModelWeights::resolve(const gguf::ModelFiles& files, const HyperParams& hp) {
  Resolver r(files);
  ModelWeights w;
  const gguf::TensorInfo* embd = files.find_tensor("token_embd.weight");
  if (!embd) throw std::runtime_error("the model has no tensor 'token_embd.weight'");
  const int64_t n_vocab = static_cast<int64_t>(embd->shape[1]);
  const int64_t e = hp.n_embd, q_dim = int64_t(hp.n_head) * hp.head_dim,
                kv_dim = int64_t(hp.n_head_kv) * hp.head_dim;
  w.token_embd = r.get("token_embd.weight", {e, n_vocab});
  w.output_norm = r.vector("output_norm.weight", e);
  w.output = r.get("output.weight", {e, n_vocab}, false);
  if (!w.output) w.output = w.token_embd;  // tied embeddings
  const int64_t pairs = hp.n_rot / 2;
  w.rope_freqs = r.vector("rope_freqs.weight", pairs, false);
  w.rope_factors_short = r.vector("rope_factors_short.weight", pairs, false);
  w.rope_factors_long = r.vector("rope_factors_long.weight", pairs, false);
  if (bool(w.rope_factors_short) != bool(w.rope_factors_long))
    throw std::runtime_error("LongRoPE needs both rope_factors_short and rope_factors_long");
  if (w.rope_freqs && w.rope_factors_long)
    throw std::runtime_error("the model has both rope_freqs and LongRoPE factors");

  for (int l = 0; l < hp.n_layer; ++l) {
    auto name = [&](const char* part) { return "blk." + std::to_string(l) + "." + part; };
    LayerWeights L;
    L.attn_norm = r.vector(name("attn_norm.weight"), e);
    if (hp.spec->fused_qkv) {  // q rows, then k, then v
      const Weight qkv = r.get(name("attn_qkv.weight"), {e, q_dim + 2 * kv_dim});
      L.wq = qkv.slice(0, q_dim);
      L.wk = qkv.slice(q_dim, kv_dim);
      L.wv = qkv.slice(q_dim + kv_dim, kv_dim);
    } else {
      L.wq = r.get(name("attn_q.weight"), {e, q_dim});
      L.wk = r.get(name("attn_k.weight"), {e, kv_dim});
      L.wv = r.get(name("attn_v.weight"), {e, kv_dim});
    }
    L.wo = r.get(name("attn_output.weight"), {q_dim, e});
    if (hp.qkv_bias) {
      L.bq = r.vector(name("attn_q.bias"), q_dim);
      L.bk = r.vector(name("attn_k.bias"), kv_dim);
      L.bv = r.vector(name("attn_v.bias"), kv_dim);
    }
    if (hp.qk_norm) {
      L.q_norm = r.vector(name("attn_q_norm.weight"), hp.head_dim);
      L.k_norm = r.vector(name("attn_k_norm.weight"), hp.head_dim);
    }
    if (hp.post_norms) {
      L.post_attn_norm = r.vector(name("post_attention_norm.weight"), e);
      L.post_ffn_norm = r.vector(name("post_ffw_norm.weight"), e);
    }
    L.ffn_norm = r.vector(name("ffn_norm.weight"), e);
    if (hp.n_expert == 0 && hp.spec->fused_gate_up) {  // gate rows, then up rows
      const Weight gate_up = r.get(name("ffn_up.weight"), {e, 2 * int64_t(hp.n_ff)});
      L.ffn_gate = gate_up.slice(0, hp.n_ff);
      L.ffn_up = gate_up.slice(hp.n_ff, hp.n_ff);
      L.ffn_down = r.get(name("ffn_down.weight"), {hp.n_ff, e});
    } else if (hp.n_expert == 0) {
      L.ffn_gate = r.get(name("ffn_gate.weight"), {e, hp.n_ff});
      L.ffn_up = r.get(name("ffn_up.weight"), {e, hp.n_ff});
      L.ffn_down = r.get(name("ffn_down.weight"), {hp.n_ff, e});
    } else {
      const int64_t f = hp.n_ff_expert, x = hp.n_expert;
      L.ffn_gate_inp = r.get(name("ffn_gate_inp.weight"), {e, x});
      L.ffn_gate_exps = r.get(name("ffn_gate_exps.weight"), {e, f, x});
      L.ffn_up_exps = r.get(name("ffn_up_exps.weight"), {e, f, x});
      L.ffn_down_exps = r.get(name("ffn_down_exps.weight"), {f, e, x});
      if (hp.shared_expert) {
        L.ffn_gate_inp_shexp = r.vector(name("ffn_gate_inp_shexp.weight"), e);
        const gguf::TensorInfo* up = files.find_tensor(name("ffn_up_shexp.weight"));
        if (!up)
          throw std::runtime_error("the model has no tensor '" + name("ffn_up_shexp.weight") + "'");
        const int64_t fs = static_cast<int64_t>(up->shape[1]);
        L.ffn_gate_shexp = r.get(name("ffn_gate_shexp.weight"), {e, fs});
        L.ffn_up_shexp = r.get(name("ffn_up_shexp.weight"), {e, fs});
        L.ffn_down_shexp = r.get(name("ffn_down_shexp.weight"), {fs, e});
      }
    }
    w.layers.push_back(L);
  }
  r.check_all_used(hp.arch);
  return w;
}

}  // namespace ember::model
