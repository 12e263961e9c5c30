#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ember::model {

Transformer::Transformer(const gguf::ModelFiles& files, Backend& backend, int n_ctx,
                         CacheType cache, int n_seq, const Placement& placement)
    : hp_(HyperParams::from_gguf(files.metadata())),
      w_(ModelWeights::resolve(files, hp_)),
      backend_(backend),
      placement_(placement),
      n_ctx_(n_ctx > 0 ? n_ctx : hp_.n_ctx_train),
      n_seq_(n_seq) {
  if (!placement_.host) {
    placement_.device_layers = -1;
    placement_.host_expert_layers = 0;
  }
  if (placement_.device_layers < 0 || placement_.device_layers > hp_.n_layer)
    placement_.device_layers = hp_.n_layer;
  placement_.host_expert_layers =
      hp_.n_expert ? std::min(placement_.host_expert_layers, hp_.n_layer) : 0;
  check_cache_type(cache, hp_.head_dim);
  check_device_memory(cache);
  // Frequency divisors: Llama 3's, or LongRoPE's long factors once the context in use exceeds
  // the original context (short ones otherwise).
  Weight factors = w_.rope_freqs;
  if (w_.rope_factors_long)
    factors = n_ctx_ > hp_.rope_ctx_orig ? w_.rope_factors_long : w_.rope_factors_short;
  const float* divisors = factors ? factors.floats() : nullptr;
  rope_global_ = make_rope_table(hp_, hp_.rope_base, divisors, true);
  // Local layers with a base of their own (gemma3) rotate unscaled, as in the reference.
  rope_local_ = make_rope_table(hp_, hp_.rope_base_local, divisors, hp_.spec->local_rope_base == 0);
  backend_.init_cache(hp_.n_layer, n_ctx_, hp_.n_head_kv, hp_.head_dim, cache, n_seq_);
  if (placement_.host && placement_.device_layers < hp_.n_layer)
    placement_.host->init_cache(hp_.n_layer, n_ctx_, hp_.n_head_kv, hp_.head_dim, cache, n_seq_);
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

Backend& Transformer::layer_backend(int layer) const {
  return layer < hp_.n_layer - placement_.device_layers ? *placement_.host : backend_;
}

Tensor Transformer::cross(const Tensor& x, Backend& from, Backend& to) {
  std::vector<float> host(static_cast<size_t>(x.rows * x.cols));
  from.read_rows(x, 0, x.rows, host.data());
  Tensor y = to.alloc(x.rows, x.cols);
  to.write_rows(y, host.data());
  return y;
}

void Transformer::check_device_memory(CacheType cache) {
  auto bytes = [](const Weight& w) -> uint64_t { return w ? w.info->bytes : 0; };
  // Per layer: every tensor (fused ones counted once) and its KV cache.
  const uint64_t kv = hp_.kv_cache_bytes(n_ctx_, n_seq_, cache) / uint64_t(hp_.n_layer);
  std::vector<uint64_t> layer(hp_.n_layer), experts(hp_.n_layer);
  for (int l = 0; l < hp_.n_layer; ++l) {
    const LayerWeights& w = w_.layers[l];
    std::vector<const gguf::TensorInfo*> seen;
    for (const Weight* t : {&w.attn_norm,
                            &w.wq,
                            &w.wk,
                            &w.wv,
                            &w.bq,
                            &w.bk,
                            &w.bv,
                            &w.q_norm,
                            &w.k_norm,
                            &w.wo,
                            &w.post_attn_norm,
                            &w.ffn_norm,
                            &w.ffn_gate,
                            &w.ffn_up,
                            &w.ffn_down,
                            &w.post_ffn_norm,
                            &w.ffn_gate_inp,
                            &w.ffn_gate_inp_shexp,
                            &w.ffn_gate_shexp,
                            &w.ffn_up_shexp,
                            &w.ffn_down_shexp})
      if (*t && std::find(seen.begin(), seen.end(), t->info) == seen.end()) {
        seen.push_back(t->info);
        layer[l] += bytes(*t);
      }
    experts[l] = bytes(w.ffn_gate_exps) + bytes(w.ffn_up_exps) + bytes(w.ffn_down_exps);
  }
  uint64_t need = bytes(w_.output) + bytes(w_.output_norm);
  if (placement_.device_layers == hp_.n_layer && w_.output.info != w_.token_embd.info)
    need += bytes(w_.token_embd);
  const int first = hp_.n_layer - placement_.device_layers;
  for (int l = first; l < hp_.n_layer; ++l)
    need += layer[l] + kv + (l < placement_.host_expert_layers ? 0 : experts[l]);
  device_bytes_ = need;
  if (placement_.device_memory == 0 || need <= placement_.device_memory) return;
  // How many of the last layers would fit, all else as asked (an untied embedding table stays on
  // the host unless every layer fits).
  uint64_t used = bytes(w_.output) + bytes(w_.output_norm);
  int fit = 0;
  for (int l = hp_.n_layer - 1; l >= 0; --l) {
    used += layer[l] + kv + (l < placement_.host_expert_layers ? 0 : experts[l]);
    if (used > placement_.device_memory) break;
    ++fit;
  }
  if (fit == hp_.n_layer && w_.output.info != w_.token_embd.info) --fit;
  auto gib = [](uint64_t b) { return std::to_string(b / (1 << 20)) + " MiB"; };
  throw std::runtime_error(
      "the model's share on the device needs " + gib(need) + " but the device has " +
      gib(placement_.device_memory) + "; " + std::to_string(fit) + " of its " +
      std::to_string(hp_.n_layer) + " layers would fit: use --n-gpu-layers " + std::to_string(fit) +
      (hp_.n_expert ? " or --cpu-moe" : "") + ", a smaller --ctx, or --backend cpu");
}

void Transformer::linear(Backend& b, const Weight& w, const Tensor& x, Tensor out,
                         const std::vector<int32_t>& seqs) {
  b.matmul(w, x, out);
  add_lora(b, w, x, out, seqs);
}

void Transformer::linear_shared(Backend& b, std::span<const Weight* const> w, const Tensor& x,
                                std::span<const Tensor> out, const std::vector<int32_t>& seqs) {
  b.matmul_shared(w, x, out);
  for (size_t i = 0; i < w.size(); ++i) add_lora(b, *w[i], x, out[i], seqs);
}

void Transformer::add_lora(Backend& b, const Weight& w, const Tensor& x, Tensor out,
                           const std::vector<int32_t>& seqs) {
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
    const Weight lora_b = w.n_rows ? p->b.slice(w.first_row, w.n_rows) : p->b;
    Tensor ax = b.alloc(x.rows, p->a.rows()), bax = b.alloc(x.rows, out.cols);
    b.matmul(p->a, x, ax);
    b.matmul(lora_b, ax, bax);
    b.add_scaled_rows(out, bax, scales);
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

  // x: the residual stream, [n, n_embd], on the backend of the layer it enters.
  Backend* at = &layer_backend(0);
  Tensor x = at->alloc(n, hp_.n_embd);
  at->embed(w_.token_embd, batch.tokens, hp_.embed_scale, x);
  for (int l = 0; l < hp_.n_layer; ++l) {
    Backend& b = layer_backend(l);
    if (&b != at) {  // the boundary between host and device layers
      x = cross(x, *at, b);
      at = &b;
    }
    const size_t mark = b.scratch_mark();  // a layer's temporaries die with it
    b.add(x, attention_block(b, l, x, batch));
    b.add(x, ffn_block(b, l, x, batch.seqs));
    b.scratch_rewind(mark);
  }
  if (at != &backend_) x = cross(x, *at, backend_);  // no device layers: the output still is

  // Logits of the rows asked for: the final norm and the output matrix, [rows, n_vocab], in
  // groups the backend can hold in one tensor (a device buffer; 256 rows of a 152k vocabulary
  // are 155 MB).
  const int64_t rows = static_cast<int64_t>(batch.logits_for.size());
  const int64_t width = batch.hidden_states ? hp_.n_embd : n_vocab();
  std::vector<float> out(static_cast<size_t>(rows * width));
  const int64_t group = std::max<int64_t>(
      1, static_cast<int64_t>(std::min<size_t>(backend_.max_tensor_bytes(), size_t(1) << 40) /
                              (4 * size_t(std::max<int64_t>(width, hp_.n_embd)))));
  for (int64_t first = 0; first < rows; first += group) {
    const int64_t count = std::min(group, rows - first);
    const std::vector<int32_t> wanted(batch.logits_for.begin() + first,
                                      batch.logits_for.begin() + first + count);
    const size_t mark = backend_.scratch_mark();
    Tensor picked = backend_.alloc(count, hp_.n_embd);
    backend_.copy_rows(x, wanted, picked);
    backend_.rms_norm(picked, w_.output_norm, hp_.rms_eps, picked);
    if (batch.hidden_states) {  // embeddings: the normed states themselves
      backend_.read_rows(picked, 0, count, out.data() + first * width);
      backend_.scratch_rewind(mark);
      continue;
    }
    Tensor logits = backend_.alloc(count, n_vocab());
    std::vector<int32_t> picked_seqs;
    for (int32_t i : wanted) picked_seqs.push_back(batch.seqs[i]);
    linear(backend_, w_.output, picked, logits, picked_seqs);
    backend_.read_rows(logits, 0, count, out.data() + first * n_vocab());
    backend_.scratch_rewind(mark);
  }
  if (hp_.final_softcap > 0 && !batch.hidden_states)  // gemma2: z → c·tanh(z/c)
    for (float& z : out) z = hp_.final_softcap * std::tanh(z / hp_.final_softcap);
  backend_.reset_scratch();
  if (placement_.host) placement_.host->reset_scratch();
  return out;
}

// Pre-norm attention with GQA, RoPE and the KV cache; returns what is added to the residual.
Tensor Transformer::attention_block(Backend& b, int layer, const Tensor& x, const Batch& batch) {
  const LayerWeights& w = w_.layers[layer];
  const int64_t n = x.rows, q_dim = int64_t(hp_.n_head) * hp_.head_dim,
                kv_dim = int64_t(hp_.n_head_kv) * hp_.head_dim;
  Tensor h = b.alloc(n, hp_.n_embd);
  b.rms_norm(x, w.attn_norm, hp_.rms_eps, h);

  Tensor q = b.alloc(n, q_dim), k = b.alloc(n, kv_dim), v = b.alloc(n, kv_dim);
  const Weight* qkv[] = {&w.wq, &w.wk, &w.wv};
  const Tensor qkv_out[] = {q, k, v};
  linear_shared(b, qkv, h, qkv_out, batch.seqs);
  if (hp_.qkv_bias) {
    b.add_bias(q, w.bq);
    b.add_bias(k, w.bk);
    b.add_bias(v, w.bv);
  }
  if (hp_.qk_norm) {  // one RMS norm per head, before RoPE
    b.rms_norm(q.reshaped(hp_.head_dim), w.q_norm, hp_.rms_eps, q.reshaped(hp_.head_dim));
    b.rms_norm(k.reshaped(hp_.head_dim), w.k_norm, hp_.rms_eps, k.reshaped(hp_.head_dim));
  }
  const bool local = hp_.is_local_layer(layer);
  const RopeTable& rope = local ? rope_local_ : rope_global_;
  b.rope(q, batch.positions, hp_.n_head, rope, hp_.rope_style);
  b.rope(k, batch.positions, hp_.n_head_kv, rope, hp_.rope_style);
  b.store_kv(layer, k, v, batch.positions, batch.seqs);

  Tensor attn = b.alloc(n, q_dim);
  b.attention(layer, q, batch.positions, batch.seqs, hp_.n_head, hp_.n_head_kv, hp_.head_dim,
              hp_.attn_scale, hp_.attn_softcap, local ? hp_.sliding_window : 0, attn);
  Tensor out = b.alloc(n, hp_.n_embd);
  linear(b, w.wo, attn, out, batch.seqs);
  if (hp_.post_norms) b.rms_norm(out, w.post_attn_norm, hp_.rms_eps, out);
  return out;
}

// Pre-norm feed-forward: gated (SiLU or GELU) dense, or a mixture of experts; returns what is
// added to the residual.
Tensor Transformer::ffn_block(Backend& b, int layer, const Tensor& x,
                              const std::vector<int32_t>& seqs) {
  const LayerWeights& w = w_.layers[layer];
  const int64_t n = x.rows;
  Tensor h = b.alloc(n, hp_.n_embd);
  b.rms_norm(x, w.ffn_norm, hp_.rms_eps, h);
  Tensor out = b.alloc(n, hp_.n_embd);
  if (hp_.n_expert == 0) {
    Tensor gate = b.alloc(n, hp_.n_ff), up = b.alloc(n, hp_.n_ff);
    const Weight* gate_up[] = {&w.ffn_gate, &w.ffn_up};
    const Tensor gate_up_out[] = {gate, up};
    linear_shared(b, gate_up, h, gate_up_out, seqs);
    b.glu(gate, up, hp_.activation, gate);
    linear(b, w.ffn_down, gate, out, seqs);
  } else {
    Tensor router = b.alloc(n, hp_.n_expert);
    b.matmul(w.ffn_gate_inp, h, router);
    if (layer < placement_.host_expert_layers && &b != placement_.host) {
      // The routed experts stay in host memory (--cpu-moe): their inputs cross to the CPU and
      // the result comes back.
      Backend& host = *placement_.host;
      const size_t host_mark = host.scratch_mark();
      Tensor host_out = host.alloc(n, hp_.n_embd);
      host.moe_ffn(w, hp_, cross(h, b, host), cross(router, b, host), host_out);
      out = cross(host_out, host, b);  // copied on the way: the host scratch is free again
      host.scratch_rewind(host_mark);
    } else {
      b.moe_ffn(w, hp_, h, router, out);
    }
    if (hp_.shared_expert) {  // qwen2moe: + sigmoid(gate · h) · shared FFN(h)
      const int64_t f = w.ffn_up_shexp.rows();
      Tensor gate = b.alloc(n, f), up = b.alloc(n, f), shared = b.alloc(n, hp_.n_embd);
      const Weight* gate_up[] = {&w.ffn_gate_shexp, &w.ffn_up_shexp};
      const Tensor gate_up_out[] = {gate, up};
      linear_shared(b, gate_up, h, gate_up_out, seqs);
      b.glu(gate, up, hp_.activation, gate);
      linear(b, w.ffn_down_shexp, gate, shared, seqs);
      Tensor shared_gate = b.alloc(n, 1);
      b.matmul(w.ffn_gate_inp_shexp, h, shared_gate);
      b.scale_rows_sigmoid(shared, shared_gate);
      b.add(out, shared);
    }
  }
  if (hp_.post_norms) b.rms_norm(out, w.post_ffn_norm, hp_.rms_eps, out);
  return out;
}

}  // namespace ember::model
