// The forward pass of every supported architecture, written once over the Backend interface.
// An architecture is its HyperParams (hparams.cpp) plus the few `if`s below where it differs.
#pragma once

#include <vector>

#include "gguf/model_files.h"
#include "model/backend.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace ember::model {

class Transformer {
 public:
  // `files` must outlive the transformer (weights are views into its mapping). n_ctx: positions
  // the KV cache holds (0: the model's training context).
  Transformer(const gguf::ModelFiles& files, Backend& backend, int n_ctx = 0,
              CacheType cache = CacheType::kF16);

  const HyperParams& hparams() const { return hp_; }
  int n_vocab() const { return static_cast<int>(w_.token_embd.rows()); }
  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }
  void reset() { n_past_ = 0; }  // start a new sequence (the cache is overwritten as it goes)

  // Runs `tokens` at positions n_past, n_past + 1, ... (all together, as in prompt processing)
  // and appends them to the cache. Returns the logits of every token (tokens × n_vocab,
  // row-major) when `all_logits`, else those of the last token only.
  std::vector<float> forward(const std::vector<int32_t>& tokens, bool all_logits);

 private:
  Tensor attention_block(int layer, const Tensor& x, const std::vector<int32_t>& positions);
  Tensor ffn_block(int layer, const Tensor& x);

  HyperParams hp_;
  ModelWeights w_;
  Backend& backend_;
  int n_ctx_;
  int n_past_ = 0;
};

}  // namespace ember::model
