// The vocabulary as a trie of token bytes, built once per model, and the tokens a grammar allows
// next: one walk down the trie with the grammar's recognizer, dropping a whole subtree at the
// first byte the grammar refuses. The recognizer's states are interned during a walk and each
// (state, byte) step computed once, so inside a string — where almost every token fits and the
// state after a plain character is the state before it — a trie node costs one lookup, and the
// tokens of plain text are marked at once without walking their part of the trie.
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
  void allowed(const Matcher& m, std::vector<char>& allowed) const;
  size_t n_vocab() const { return n_vocab_; }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int>> children;
    std::vector<int32_t> tokens;  // the tokens whose bytes end here
    bool mixed_below = false;     // a token at or below here has a byte that is not plain text
  };
  struct Walk;
  // plain_path: every byte from the root to `node` is plain.
  void walk(int node, int state, bool plain_path, Walk& w, std::vector<char>& allowed) const;
  // Plain text bytes: what a JSON string holds as is (not '"', '\' or a control byte). Inside a
  // string the recognizer returns to the same state after each, so every token made of them
  // fits there: marked at once rather than walked (most of a 262k vocabulary).
  static bool plain(uint8_t b) { return b >= 0x20 && b != '"' && b != '\\'; }
  std::vector<Node> nodes_;
  std::vector<int32_t> plain_tokens_;
  size_t n_vocab_ = 0;
};

}  // namespace ember::grammar
