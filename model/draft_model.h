// Speculative decoding with a draft model (`--draft-model FILE`): a small model with the target's
// vocabulary guesses the next tokens greedily, and the target verifies them in one batched
// forward pass exactly as it verifies prompt-lookup guesses (speculative.h).
//
// Exactness: the guesses are deterministic (the draft's argmax), so the standard acceptance rule
// of speculative sampling (Leviathan et al. 2023, "Fast Inference from Transformers via
// Speculative Decoding"; Chen et al. 2023) with a draft distribution q that puts all its mass on
// the guess x reduces to: accept x with probability min(1, p(x)/q(x)) = p(x), else sample from
// the residual max(0, p − q) ∝ p without x. Sampling y ~ p and accepting when y = x does exactly
// that, which is what the Completion's verification does. Greedy output is identical token for
// token; sampled output (same seed) too. llama.cpp's speculative server drafts greedily as well.
#pragma once

#include <vector>

#include "gguf/model_files.h"
#include "model/backends/make_backend.h"
#include "model/speculative.h"
#include "model/text/vocab.h"
#include "model/transformer.h"

namespace ember::model {

// Throws std::runtime_error, naming what differs, unless a draft model's vocabulary can stand in
// for the target's: the same tokenizer model, the same begin/end tokens, the same pieces where
// both have them, and sizes within 128 of each other (models of one family pad the vocabulary
// to different multiples; llama.cpp's speculative example allows the same difference).
void check_draft_vocabulary(const text::Vocab& target, const text::Vocab& draft);

// One sequence's guesses from a draft model: the draft's KV-cache sequence `seq` of `model`
// (shared by several DraftModels, one per sequence, in the server) follows the text it is asked
// about, re-reading only what changed since the last call (the tokens after the longest common
// prefix). Guesses are token ids below `vocab_limit` (the target's logits rows) and stop before
// an end-of-generation token.
class DraftModel {
 public:
  // `max_read`: at most this many tokens of new context are read per call (0: all), so that a
  // long prompt is caught up with over several calls (the server's steps) instead of in one.
  DraftModel(Transformer& model, const text::Vocab& vocab, int seq, int vocab_limit,
             int max_read = 0);
  // Up to `n` greedy guesses of what follows `context`: none while the draft is still catching
  // up (max_read), where its context ends, or when the context holds a token the draft's
  // vocabulary lacks (one only the target has). Throws what the draft's forward pass throws.
  std::vector<text::TokenId> guess(const std::vector<text::TokenId>& context, int n);
  // Tokens the draft has run through its forward pass so far (context and guesses).
  uint64_t tokens_read() const { return tokens_read_; }
  // guess() as the Drafter's DraftFn (this object must outlive it).
  DraftFn fn() {
    return [this](const std::vector<text::TokenId>& c, int n) { return guess(c, n); };
  }

 private:
  // Runs `tokens` after what the sequence holds; returns the last one's argmax.
  text::TokenId run(const std::vector<text::TokenId>& tokens);

  Transformer& model_;
  const text::Vocab& vocab_;
  int seq_, vocab_limit_, max_read_;
  uint64_t tokens_read_ = 0;
  std::vector<text::TokenId> cached_;  // the tokens whose keys and values the sequence holds
};

// A draft model loaded beside its target: the file (its vocabulary checked against the
// target's before anything else is built), its own backends (make_draft_backends) and a
// transformer with `n_seq` cache sequences over the target's context, clipped to the draft's
// training context. Throws std::runtime_error (a file that does not open, another vocabulary,
// a device without room).
struct LoadedDraft {
  gguf::ModelFiles files;
  text::Vocab vocab;
  Backends backends;
  Transformer transformer;
  LoadedDraft(const std::string& path, const text::Vocab& target_vocab, const BackendSpec& spec,
              const Backends& target_backends, const Transformer& target, CacheType cache,
              int n_seq);
};

}  // namespace ember::model
