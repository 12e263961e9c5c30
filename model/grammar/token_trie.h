// The vocabulary as a trie of token bytes, built once per model, and the tokens a grammar allows
// next: one walk down the trie with the grammar's recognizer, dropping a whole subtree at the
// first byte the grammar refuses. The recognizer's states are interned during a walk and each
// (state, byte) step computed once, so inside a string — where almost every token fits and the
// state after a plain character is the state before it — the tokens of plain text are marked at
// once, and the others are walked from their first other byte on, in a second, much smaller
// trie of those tails.
#pragma once

#include <cstdint>
#include <vector>

#include "model/grammar/grammar.h"
#include "model/text/tokenizer.h"

namespace ember::grammar {

class TokenTrie {
 public:
  // Every token with bytes (control tokens have none and are never allowed by a grammar).
  explicit TokenTrie(const text::Tokenizer& tokenizer);

  // allowed[id] = 1 when token id's bytes can follow what `m` has seen (resized to n_vocab).
  // Throws GrammarTooComplex when the grammar needs more than kMaskBudget expansion steps.
  void allowed(const Matcher& m, std::vector<char>& allowed) const;
  static constexpr size_t kMaskBudget = size_t(1) << 23;
  size_t n_vocab() const { return n_vocab_; }

  // A node of a byte trie (public for the helper that builds them).
  struct Node {
    std::vector<std::pair<uint8_t, int>> children;
    std::vector<int32_t> tokens;  // the tokens whose bytes end here
  };

 private:
  struct Walk;
  void walk(const std::vector<Node>& trie, int node, int state, Walk& w,
            std::vector<char>& allowed) const;
  // Plain text bytes: what a JSON string holds as is (not '"', '\' or a control byte). Inside a
  // string the recognizer returns to the same state after each, so every token made of them
  // fits there (marked at once: most of a 262k vocabulary), and a token that holds others fits
  // when its tail from the first other byte does.
  static bool plain(uint8_t b) { return b >= 0x20 && b != '"' && b != '\\'; }
  std::vector<Node> nodes_;        // every token's bytes
  std::vector<Node> mixed_tails_;  // the tokens with other bytes, from the first of them on
  std::vector<int32_t> plain_tokens_;
  size_t n_vocab_ = 0;
};

}  // namespace ember::grammar
