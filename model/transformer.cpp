#include "model/transformer.h"

#include <algorithm>
#include <cmath>
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
  // Frequency divisors: Llama 3's, or LongRoPE's long factors once the context in use exceeds
  // the original context (short ones otherwise).
  Weight factors = w_.rope_freqs;
  if (w_.rope_factors_long)
    factors = n_ctx_ > hp_.rope_ctx_orig ? w_.rope_factors_long : w_.rope_factors_short;
  const float* divisors = factors ? factors.floats() : nullptr;
  rope_global_ = make_rope_table(hp_, hp_.rope_base, divisors, true);
  // Local layers with a base of their own (gemma3) rotate unscaled, as in the reference.
  rope_local_ = make_rope_table(hp_, hp_.rope_base_local, divisors, hp_.spec->local_rope_base == 0);
  backend_.init_cache(hp_.n_layer, n_ctx_, hp_.n_head_kv * hp_.head_dim, cache, n_seq_);
  lora_scales_.resize(static_cast<size_t>(n_seq_));
}

void Transformer::add_lora(std::shared_ptr<const LoraAdapter> adapter, float scale) {
  loras_.push_back(std::move(adapter));
  for (auto& s : lora_scales_) s.push_back(scale);
}

void Transformer::set_lora_scales(int seq, std::vector<float> scales) {
  scales.resize(loras_.size(), 0.0f);
  lora_scales_.at(static_cast<size_t>(seq)) = std::move(scales);
}

void Transformer::linear(const Weight& w, const Tensor& x, Tensor out,
                         const std::vector<int32_t>& seqs) {
  backend_.matmul(w, x, out);
  for (size_t j = 0; j < loras_.size(); ++j) {
    const LoraAdapter::Pair* p = loras_[j]->find(w.info->name);
    if (!p) continue;
    std::vector<float> scales(static_cast<size_t>(x.rows));
    bool any = false;
    for (int64_t t = 0; t < x.rows; ++t) {
      scales[t] = lora_scales_[seqs[t]][j] * p->factor;
      any |= scales[t] != 0;
    }
    if (!any) continue;
    // A fused weight's slice (phi3's q, k, v) takes the same rows of B.
    const Weight b = w.n_rows ? p->b.slice(w.first_row, w.n_rows) : p->b;
    Tensor ax = backend_.alloc(x.rows, p->a.rows()), bax = backend_.alloc(x.rows, out.cols);
    backend_.matmul(p->a, x, ax);
    backend_.matmul(b, ax, bax);
    backend_.add_scaled_rows(out, bax, scales);
  }
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
    backend_.add(x, ffn_block(l, x, batch.seqs));
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
    std::vector<int32_t> picked_seqs;
    for (int32_t i : batch.logits_for) picked_seqs.push_back(batch.seqs[i]);
    linear(w_.output, picked, logits, picked_seqs);
    backend_.read_rows(logits, 0, rows, out.data());
    if (hp_.final_softcap > 0)  // gemma2: z → c·tanh(z/c)
      for (float& z : out) z = hp_.final_softcap * std::tanh(z / hp_.final_softcap);
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
  linear(w.wq, h, q, batch.seqs);
  linear(w.wk, h, k, batch.seqs);
  linear(w.wv, h, v, batch.seqs);
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
  const RopeTable& rope = local ? rope_local_ : rope_global_;
  backend_.rope(q, batch.positions, hp_.n_head, rope, hp_.rope_style);
  backend_.rope(k, batch.positions, hp_.n_head_kv, rope, hp_.rope_style);
  backend_.store_kv(layer, k, v, batch.positions, batch.seqs);

  Tensor attn = backend_.alloc(n, q_dim);
  backend_.attention(layer, q, batch.positions, batch.seqs, hp_.n_head, hp_.n_head_kv, hp_.head_dim,
                     hp_.attn_scale, hp_.attn_softcap, local ? hp_.sliding_window : 0, attn);
  Tensor out = backend_.alloc(n, hp_.n_embd);
  linear(w.wo, attn, out, batch.seqs);
  if (hp_.post_norms) backend_.rms_norm(out, w.post_attn_norm, hp_.rms_eps, out);
  return out;
}

// Pre-norm feed-forward: gated (SiLU or GELU) dense, or a mixture of experts; returns what is
// added to the residual.
Tensor Transformer::ffn_block(int layer, const Tensor& x, const std::vector<int32_t>& seqs) {
  const LayerWeights& w = w_.layers[layer];
  const int64_t n = x.rows;
  Tensor h = backend_.alloc(n, hp_.n_embd);
  backend_.rms_norm(x, w.ffn_norm, hp_.rms_eps, h);
  Tensor out = backend_.alloc(n, hp_.n_embd);
  if (hp_.n_expert == 0) {
    Tensor gate = backend_.alloc(n, hp_.n_ff), up = backend_.alloc(n, hp_.n_ff);
    linear(w.ffn_gate, h, gate, seqs);
    linear(w.ffn_up, h, up, seqs);
    backend_.glu(gate, up, hp_.activation, gate);
    linear(w.ffn_down, gate, out, seqs);
  } else {
    Tensor router = backend_.alloc(n, hp_.n_expert);
    backend_.matmul(w.ffn_gate_inp, h, router);
    backend_.moe_ffn(w, hp_, h, router, out);
    if (hp_.shared_expert) {  // qwen2moe: + sigmoid(gate · h) · shared FFN(h)
      const int64_t f = w.ffn_up_shexp.rows();
      Tensor gate = backend_.alloc(n, f), up = backend_.alloc(n, f),
             shared = backend_.alloc(n, hp_.n_embd);
      linear(w.ffn_gate_shexp, h, gate, seqs);
      linear(w.ffn_up_shexp, h, up, seqs);
      backend_.glu(gate, up, hp_.activation, gate);
      linear(w.ffn_down_shexp, gate, shared, seqs);
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
