// The vocabulary as a trie of token bytes, built once per model, and the tokens a grammar allows
// next: one walk down the trie with the grammar's recognizer, dropping a whole subtree at the
// first byte the grammar refuses. The recognizer's states are interned during a walk and each
// (state, byte) step computed once, so inside a string — where almost every token fits and the
// state after a plain character is the state before it — a trie node costs one lookup.
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
  };
  struct Walk;
  void walk(int node, int state, Walk& w, std::vector<char>& allowed) const;
  std::vector<Node> nodes_;
  size_t n_vocab_ = 0;
};

}  // namespace ember::grammar
