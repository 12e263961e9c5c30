#include "model/transformer.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace ember::model {

Transformer::Transformer(const gguf::ModelFiles& files, Backend& backend, int n_ctx,
                         CacheType cache, int n_seq)
    : hp_(HyperParams::from_gguf(files.metadata())),
      w_(ModelWeights::resolve(files, hp_)),
      backend_(backend),
      n_ctx_(n_ctx > 0 ? n_ctx : hp_.n_ctx_train),
      n_seq_(n_seq) {
  backend_.init_cache(hp_.n_layer, n_ctx_, hp_.n_head_kv * hp_.head_dim, cache, n_seq_);
}

std::vector<float> Transformer::forward(const std::vector<int32_t>& tokens, bool all_logits) {
  if (tokens.empty()) return {};
  const int n = static_cast<int>(tokens.size());
  if (n_past_ + n > n_ctx_)
    throw std::runtime_error("the sequence needs " + std::to_string(n_past_ + n) +
                             " positions but the context holds " + std::to_string(n_ctx_));
  std::vector<float> logits;
  for (int first = 0; first < n; first += kForwardBatch) {
    const int last = std::min(n, first + kForwardBatch);
    Batch batch;
    for (int i = first; i < last; ++i)
      batch.add(tokens[i], n_past_ + i - first, 0, all_logits || i == n - 1);
    std::vector<float> part = decode(batch);
    logits.insert(logits.end(), part.begin(), part.end());
    n_past_ += last - first;
  }
  return logits;
}

std::vector<float> Transformer::decode(const Batch& batch) {
  if (batch.tokens.empty()) return {};
  const int64_t n = static_cast<int64_t>(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch.positions[i] < 0 || batch.positions[i] >= n_ctx_)
      throw std::runtime_error("position " + std::to_string(batch.positions[i]) +
                               " is outside the context of " + std::to_string(n_ctx_));
    if (batch.seqs[i] < 0 || batch.seqs[i] >= n_seq_)
      throw std::runtime_error("sequence " + std::to_string(batch.seqs[i]) + " does not exist");
  }

  // x: the residual stream, [n, n_embd].
  Tensor x = backend_.alloc(n, hp_.n_embd);
  backend_.embed(w_.token_embd, batch.tokens, hp_.embed_scale, x);
  for (int l = 0; l < hp_.n_layer; ++l) {
    const size_t mark = backend_.scratch_mark();  // a layer's temporaries die with it
    backend_.add(x, attention_block(l, x, batch));
    backend_.add(x, ffn_block(l, x));
    backend_.scratch_rewind(mark);
  }

  // Logits of the rows asked for: the final norm and the output matrix, [rows, n_vocab].
  const int64_t rows = static_cast<int64_t>(batch.logits_for.size());
  std::vector<float> out(static_cast<size_t>(rows * n_vocab()));
  if (rows > 0) {
    Tensor picked = backend_.alloc(rows, hp_.n_embd);
    backend_.copy_rows(x, batch.logits_for, picked);
    backend_.rms_norm(picked, w_.output_norm, hp_.rms_eps, picked);
    Tensor logits = backend_.alloc(rows, n_vocab());
    backend_.matmul(w_.output, picked, logits);
    backend_.read_rows(logits, 0, rows, out.data());
  }
  backend_.reset_scratch();
  return out;
}

// Pre-norm attention with GQA, RoPE and the KV cache; returns what is added to the residual.
Tensor Transformer::attention_block(int layer, const Tensor& x, const Batch& batch) {
  const LayerWeights& w = w_.layers[layer];
  const int64_t n = x.rows, q_dim = int64_t(hp_.n_head) * hp_.head_dim,
                kv_dim = int64_t(hp_.n_head_kv) * hp_.head_dim;
  Tensor h = backend_.alloc(n, hp_.n_embd);
  backend_.rms_norm(x, w.attn_norm, hp_.rms_eps, h);

  Tensor q = backend_.alloc(n, q_dim), k = backend_.alloc(n, kv_dim), v = backend_.alloc(n, kv_dim);
  backend_.matmul(w.wq, h, q);
  backend_.matmul(w.wk, h, k);
  backend_.matmul(w.wv, h, v);
  if (hp_.qkv_bias) {
    backend_.add_bias(q, w.bq);
    backend_.add_bias(k, w.bk);
    backend_.add_bias(v, w.bv);
  }
  if (hp_.qk_norm) {  // one RMS norm per head, before RoPE
    backend_.rms_norm(q.reshaped(hp_.head_dim), w.q_norm, hp_.rms_eps, q.reshaped(hp_.head_dim));
    backend_.rms_norm(k.reshaped(hp_.head_dim), w.k_norm, hp_.rms_eps, k.reshaped(hp_.head_dim));
  }
  const bool local = hp_.is_local_layer(layer);
  const float base = local ? hp_.rope_base_local : hp_.rope_base;
  backend_.rope(q, batch.positions, hp_.n_head, hp_.n_rot, base, hp_.rope_style);
  backend_.rope(k, batch.positions, hp_.n_head_kv, hp_.n_rot, base, hp_.rope_style);
  backend_.store_kv(layer, k, v, batch.positions, batch.seqs);

  Tensor attn = backend_.alloc(n, q_dim);
  backend_.attention(layer, q, batch.positions, batch.seqs, hp_.n_head, hp_.n_head_kv, hp_.head_dim,
                     hp_.attn_scale, local ? hp_.sliding_window : 0, attn);
  Tensor out = backend_.alloc(n, hp_.n_embd);
  backend_.matmul(w.wo, attn, out);
  if (hp_.post_norms) backend_.rms_norm(out, w.post_attn_norm, hp_.rms_eps, out);
  return out;
}

// Pre-norm feed-forward: gated (SiLU or GELU) dense, or a mixture of experts; returns what is
// added to the residual.
Tensor Transformer::ffn_block(int layer, const Tensor& x) {
  const LayerWeights& w = w_.layers[layer];
  const int64_t n = x.rows;
  Tensor h = backend_.alloc(n, hp_.n_embd);
  backend_.rms_norm(x, w.ffn_norm, hp_.rms_eps, h);
  Tensor out = backend_.alloc(n, hp_.n_embd);
  if (hp_.n_expert == 0) {
    Tensor gate = backend_.alloc(n, hp_.n_ff), up = backend_.alloc(n, hp_.n_ff);
    backend_.matmul(w.ffn_gate, h, gate);
    backend_.matmul(w.ffn_up, h, up);
    backend_.glu(gate, up, hp_.activation, gate);
    backend_.matmul(w.ffn_down, gate, out);
  } else {
    Tensor router = backend_.alloc(n, hp_.n_expert);
    backend_.matmul(w.ffn_gate_inp, h, router);
    backend_.moe_ffn(w, hp_, h, router, out);
    if (hp_.shared_expert) {  // qwen2moe: + sigmoid(gate · h) · shared FFN(h)
      const int64_t f = w.ffn_up_shexp.rows();
      Tensor gate = backend_.alloc(n, f), up = backend_.alloc(n, f),
             shared = backend_.alloc(n, hp_.n_embd);
      backend_.matmul(w.ffn_gate_shexp, h, gate);
      backend_.matmul(w.ffn_up_shexp, h, up);
      backend_.glu(gate, up, hp_.activation, gate);
      backend_.matmul(w.ffn_down_shexp, gate, shared);
      Tensor shared_gate = backend_.alloc(n, 1);
      backend_.matmul(w.ffn_gate_inp_shexp, h, shared_gate);
      backend_.scale_rows_sigmoid(shared, shared_gate);
      backend_.add(out, shared);
    }
  }
  if (hp_.post_norms) backend_.rms_norm(out, w.post_ffn_norm, hp_.rms_eps, out);
  return out;
}

}  // namespace ember::model
