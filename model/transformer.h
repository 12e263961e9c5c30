// The forward pass of every supported architecture, written once over the Backend interface.
// An architecture is its HyperParams (hparams.cpp) plus the few `if`s below where it differs.
#pragma once

#include <algorithm>
#include <span>
#include <vector>

#include "gguf/model_files.h"
#include "model/backend.h"
#include "model/hparams.h"
#include "model/lora.h"
#include "model/rope.h"
#include "model/weights.h"

namespace ember::model {

// Tokens of one or more sequences that go through the model together (continuous batching):
// entry i is token tokens[i] at position positions[i] of sequence seqs[i].
struct Batch {
  std::vector<int32_t> tokens, positions, seqs;
  std::vector<int32_t> logits_for;  // the entries whose logits are wanted, in this order
  // Embeddings: decode() returns the logits_for entries' final hidden states (after the output
  // norm, [rows, n_embd]) instead of their logits.
  bool hidden_states = false;

  void add(int32_t token, int32_t position, int32_t seq, bool want_logits) {
    if (want_logits) logits_for.push_back(static_cast<int32_t>(tokens.size()));
    tokens.push_back(token);
    positions.push_back(position);
    seqs.push_back(seq);
  }
  size_t size() const { return tokens.size(); }
};

// How a model is split between a device backend and the CPU (llama.cpp's --n-gpu-layers,
// --cpu-moe, --n-cpu-moe). Activations cross between the two through the host: once per step at
// the layer boundary, and twice per MoE layer whose experts stay on the CPU.
struct Placement {
  Backend* host = nullptr;     // the CPU backend for what stays on the host; null: nothing does
  int device_layers = -1;      // the last N layers (and the output) on the device; −1: all
  int host_expert_layers = 0;  // the routed experts of the first N layers on the host (all
                               // layers: --cpu-moe); attention, router and shared experts not
  // The device's memory in bytes (0: unknown). When the device's share of the weights and KV
  // cache would not fit, the constructor throws, saying how many layers would.
  uint64_t device_memory = 0;
};

class Transformer {
 public:
  // `files` must outlive the transformer (weights are views into its mapping). n_ctx: positions
  // the KV cache holds per sequence (0: the model's training context); n_seq: sequences it holds.
  // `backend` runs everything that `placement` does not give to its host backend.
  Transformer(const gguf::ModelFiles& files, Backend& backend, int n_ctx = 0,
              CacheType cache = CacheType::kF16, int n_seq = 1, const Placement& placement = {});

  const HyperParams& hparams() const { return hp_; }
  int n_vocab() const { return static_cast<int>(w_.token_embd.rows()); }
  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }
  void reset() { n_past_ = 0; }  // start a new sequence (the cache is overwritten as it goes)
  // Forgets sequence 0's positions from `n_past` on (speculative guesses that were not taken);
  // attention never reads past a token's own position, and they are overwritten as it goes on.
  void truncate(int n_past) { n_past_ = std::min(n_past_, std::max(0, n_past)); }

  // Runs `tokens` at positions n_past, n_past + 1, ... (together, as in prompt processing, in
  // batches of at most kForwardBatch) and appends them to the cache. Returns the logits of every
  // token (tokens × n_vocab, row-major) when `all_logits`, else those of the last token only.
  std::vector<float> forward(const std::vector<int32_t>& tokens, bool all_logits);
  // Tokens per decode() in forward(): bounds the activation scratch (a layer's temporaries grow
  // with the batch: 512 tokens of a 1.1B model's FFN are 23 MB) while keeping batches long
  // enough that each weight panel serves many tokens.
  static constexpr int kForwardBatch = 256;

  // Runs a batch of tokens from any sequences (each sequence's positions must follow on from
  // what its cache holds) and returns the logits of the entries in batch.logits_for
  // (logits_for.size() × n_vocab, row-major), or with batch.hidden_states their normed hidden
  // states (logits_for.size() × n_embd). Sequence 0 is the one forward() uses.
  std::vector<float> decode(const Batch& batch);
  int n_seq() const { return n_seq_; }
  // Bytes of weights and KV cache the placement puts on the main backend (a device's share).
  uint64_t device_bytes() const { return device_bytes_; }

  // LoRA adapters (lora.h), applied unmerged to the weights they adapt. `scale` is the adapter's
  // scale for every sequence until set_lora_scales() says otherwise.
  void add_lora(std::shared_ptr<const LoraAdapter> adapter, float scale);
  // The scales of the attached adapters, in the order they were added, for sequence `seq`
  // (adapters beyond the list: 0).
  void set_lora_scales(int seq, std::vector<float> scales);
  size_t lora_count() const { return loras_.size(); }

 private:
  // The blocks run on `b`, the backend of their layer.
  Tensor attention_block(Backend& b, int layer, const Tensor& x, const Batch& batch);
  Tensor ffn_block(Backend& b, int layer, const Tensor& x, const std::vector<int32_t>& seqs);
  // out = W·x, plus each attached adapter's B·(A·x) scaled per row by its sequence's scale.
  void linear(Backend& b, const Weight& w, const Tensor& x, Tensor out,
              const std::vector<int32_t>& seqs);
  // linear() for weights that share the input x (Backend::matmul_shared).
  void linear_shared(Backend& b, std::span<const Weight* const> w, const Tensor& x,
                     std::span<const Tensor> out, const std::vector<int32_t>& seqs);
  // out += each attached adapter's B·(A·x) for weight w, scaled per row by its sequence's scale.
  void add_lora(Backend& b, const Weight& w, const Tensor& x, Tensor out,
                const std::vector<int32_t>& seqs);
  Backend& layer_backend(int layer) const;
  // x copied from backend `from` to a new tensor of `to` (through the host).
  static Tensor cross(const Tensor& x, Backend& from, Backend& to);
  // Sets device_bytes_; throws when the device's share does not fit placement_.device_memory.
  void check_device_memory(CacheType cache);

  HyperParams hp_;
  ModelWeights w_;
  Backend& backend_;
  Placement placement_;
  int n_ctx_;
  RopeTable rope_global_, rope_local_;  // local: sliding-window layers (gemma3's own base)
  std::vector<std::shared_ptr<const LoraAdapter>> loras_;
  std::vector<std::vector<float>> lora_scales_;  // [sequence][adapter]
  int n_seq_;
  int n_past_ = 0;  // positions of sequence 0 that forward() has filled
  uint64_t device_bytes_ = 0;
};

}  // namespace ember::model
