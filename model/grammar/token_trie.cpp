#include "model/grammar/token_trie.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace ember::grammar {

TokenTrie::TokenTrie(const text::Tokenizer& tokenizer) : n_vocab_(tokenizer.vocab().size()) {
  nodes_.emplace_back();
  for (size_t id = 0; id < n_vocab_; ++id) {
    const std::string bytes = tokenizer.piece(static_cast<text::TokenId>(id));
    if (bytes.empty()) continue;
    int node = 0;
    for (char c : bytes) {
      const uint8_t b = static_cast<uint8_t>(c);
      auto& children = nodes_[node].children;
      auto it = std::find_if(children.begin(), children.end(),
                             [&](const auto& child) { return child.first == b; });
      if (it != children.end()) {
        node = it->second;
        continue;
      }
      const int next = static_cast<int>(nodes_.size());
      nodes_[node].children.emplace_back(b, next);
      nodes_.emplace_back();
      node = next;
    }
    nodes_[node].tokens.push_back(static_cast<int32_t>(id));
    if (std::all_of(bytes.begin(), bytes.end(),
                    [](char c) { return plain(static_cast<uint8_t>(c)); }))
      plain_tokens_.push_back(static_cast<int32_t>(id));
  }
  // Children come after their parents: a reverse pass sees every subtree before its root.
  for (int n = static_cast<int>(nodes_.size()) - 1; n >= 0; --n)
    for (const auto& [byte, child] : nodes_[n].children)
      if (!plain(byte) || nodes_[child].mixed_below) nodes_[n].mixed_below = true;
}

// The recognizer states met during one walk, and the steps between them.
struct TokenTrie::Walk {
  const Grammar& grammar;
  bool plain_loop = false;  // the start state steps to itself on every plain byte
  std::vector<Matcher> states;
  std::map<std::vector<Matcher::Stack>, int> ids;
  std::unordered_map<uint64_t, int> steps;  // state · 256 + byte → next state, −1: refused

  int step(int state, uint8_t byte) {
    const uint64_t key = uint64_t(state) * 256 + byte;
    if (auto it = steps.find(key); it != steps.end()) return it->second;
    std::vector<Matcher::Stack> next = states[state].step(byte);
    int id = -1;
    if (!next.empty()) {
      auto [it, fresh] = ids.try_emplace(next, static_cast<int>(states.size()));
      if (fresh) states.push_back(Matcher(grammar, std::move(next)));
      id = it->second;
    }
    steps.emplace(key, id);
    return id;
  }
};

void TokenTrie::walk(int node, int state, bool plain_path, Walk& w,
                     std::vector<char>& allowed) const {
  for (const auto& [byte, child] : nodes_[node].children) {
    // Below here only plain tokens, marked already: the path is plain and the state the start.
    const bool plain_child = plain_path && plain(byte);
    if (w.plain_loop && plain_child && state == 0 && !nodes_[child].mixed_below) continue;
    const int next = w.step(state, byte);
    if (next < 0) continue;  // no token below this byte can follow
    for (int32_t id : nodes_[child].tokens) allowed[id] = 1;
    if (!nodes_[child].children.empty()) walk(child, next, plain_child, w, allowed);
  }
}

void TokenTrie::allowed(const Matcher& m, std::vector<char>& allowed) const {
  allowed.assign(n_vocab_, 0);
  Walk w{*m.g_, false, {m}, {{m.stacks_, 0}}, {}};
  w.plain_loop = true;
  for (int b = 0x20; b < 0x100 && w.plain_loop; ++b)
    if (plain(static_cast<uint8_t>(b))) w.plain_loop = w.step(0, static_cast<uint8_t>(b)) == 0;
  if (w.plain_loop)
    for (int32_t id : plain_tokens_) allowed[id] = 1;
  walk(0, 0, true, w, allowed);
}

}  // namespace ember::grammar
