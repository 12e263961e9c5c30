// Speculative decoding by prompt lookup: guesses of the next tokens taken from the text so far
// (the prompt and what was generated), verified by the model in one batched forward pass. No
// second model is needed; it pays off where the output repeats its input (editing code,
// summarising, quoting, structured output that echoes field names).
//
// Exactness: every produced token is still chosen by the Completion from the target model's own
// logits, in order, one sampler call per token — a guess only decides which logits rows are
// computed together. A row is used only while every guess before it was the token actually
// chosen (so the row's context is the true one), and decoding is batch-invariant (the same
// logits bit for bit whether tokens run one by one or together). So greedy output is identical
// token for token, and sampled output (same seed) too: its distribution cannot change.
// Source of the drafting idea: "prompt lookup decoding" (A. Saxena, 2023), and llama.cpp's
// lookup example; the verification is the standard one for a deterministic draft.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/text/vocab.h"

namespace ember::model {

// Up to `max_tokens` guesses of what follows `context`: the tokens after the most recent earlier
// occurrence of its last n tokens, for n from `max_ngram` down to `min_ngram` (a longer match
// first). Empty when nothing matches. O(context · max_ngram).
std::vector<text::TokenId> lookup_draft(const std::vector<text::TokenId>& context, int max_tokens,
                                        int max_ngram = 4, int min_ngram = 2);

// Given the tokens so far and a count, the tokens guessed to follow.
using DraftFn = std::function<std::vector<text::TokenId>(const std::vector<text::TokenId>&, int)>;

// One sequence's guessing, shared by generate() and the server's scheduler: how many tokens to
// guess next. Each guess costs a logits row in the next pass (for a 262k vocabulary, a large
// share of a small model's step), so the count adapts: a wrong first guess halves it, a batch
// taken whole doubles it (up to `max_tokens`); at zero, guessing pauses for 8 passes, then
// tries one token again.
class Drafter {
 public:
  explicit Drafter(int max_tokens, DraftFn fn = {});
  // Up to min(the current count, room) guesses of what follows `context` (none when off). A
  // guessing function that throws (a draft model's forward pass) turns guessing off for good;
  // error() says why.
  std::vector<text::TokenId> guess(const std::vector<text::TokenId>& context, int room);
  // How the last guesses fared: `taken` of `guessed` were the tokens chosen.
  void outcome(size_t guessed, size_t taken);
  const std::string& error() const { return error_; }

 private:
  int max_, budget_, paused_ = 0;
  DraftFn fn_;
  std::string error_;
};

}  // namespace ember::model
