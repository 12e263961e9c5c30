#include "model/grammar/token_trie.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace ember::grammar {

namespace {

// Adds `bytes` to a trie; returns the node where they end.
int insert(std::vector<TokenTrie::Node>& nodes, std::string_view bytes) {
  int node = 0;
  for (char c : bytes) {
    const uint8_t b = static_cast<uint8_t>(c);
    auto& children = nodes[node].children;
    auto it = std::find_if(children.begin(), children.end(),
                           [&](const auto& child) { return child.first == b; });
    if (it != children.end()) {
      node = it->second;
      continue;
    }
    const int next = static_cast<int>(nodes.size());
    nodes[node].children.emplace_back(b, next);
    nodes.emplace_back();
    node = next;
  }
  return node;
}

}  // namespace

TokenTrie::TokenTrie(const text::Tokenizer& tokenizer) : n_vocab_(tokenizer.vocab().size()) {
  nodes_.emplace_back();
  mixed_tails_.emplace_back();
  for (size_t id = 0; id < n_vocab_; ++id) {
    const std::string bytes = tokenizer.piece(static_cast<text::TokenId>(id));
    if (bytes.empty()) continue;
    nodes_[insert(nodes_, bytes)].tokens.push_back(static_cast<int32_t>(id));
    const auto first_mixed = std::find_if(bytes.begin(), bytes.end(),
                                          [](char c) { return !plain(static_cast<uint8_t>(c)); });
    if (first_mixed == bytes.end()) {
      plain_tokens_.push_back(static_cast<int32_t>(id));
    } else {
      const std::string_view tail(&*first_mixed, bytes.end() - first_mixed);
      mixed_tails_[insert(mixed_tails_, tail)].tokens.push_back(static_cast<int32_t>(id));
    }
  }
}

// The recognizer states met during one walk, and the steps between them.
struct TokenTrie::Walk {
  const Grammar& grammar;
  size_t budget;  // expansion steps for the whole mask (Matcher::step throws past it)
  std::vector<Matcher> states;
  std::map<std::vector<Matcher::Stack>, int> ids;
  std::unordered_map<uint64_t, int> steps;  // state · 256 + byte → next state, −1: refused

  int step(int state, uint8_t byte) {
    const uint64_t key = uint64_t(state) * 256 + byte;
    if (auto it = steps.find(key); it != steps.end()) return it->second;
    std::vector<Matcher::Stack> next = states[state].step(byte, budget);
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

void TokenTrie::walk(const std::vector<Node>& trie, int node, int state, Walk& w,
                     std::vector<char>& allowed) const {
  for (const auto& [byte, child] : trie[node].children) {
    const int next = w.step(state, byte);
    if (next < 0) continue;  // no token below this byte can follow
    for (int32_t id : trie[child].tokens) allowed[id] = 1;
    if (!trie[child].children.empty()) walk(trie, child, next, w, allowed);
  }
}

void TokenTrie::allowed(const Matcher& m, std::vector<char>& allowed) const {
  allowed.assign(n_vocab_, 0);
  Walk w{*m.g_, kMaskBudget, {m}, {{m.stacks_, 0}}, {}};
  bool plain_loop = true;
  for (int b = 0x20; b < 0x100 && plain_loop; ++b)
    if (plain(static_cast<uint8_t>(b))) plain_loop = w.step(0, static_cast<uint8_t>(b)) == 0;
  if (!plain_loop) return walk(nodes_, 0, 0, w, allowed);
  // Plain bytes lead back to this state: every plain token fits, and a mixed one fits when the
  // rest of it from its first other byte does.
  for (int32_t id : plain_tokens_) allowed[id] = 1;
  walk(mixed_tails_, 0, 0, w, allowed);
}

}  // namespace ember::grammar
