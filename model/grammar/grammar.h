// A context-free grammar over bytes and the recognizer that constrains generation with it
// (structured output): rules of alternatives of sequences, each element a set of bytes or a
// reference to a rule; the recognizer keeps every way the bytes so far can continue (a set of
// stacks of pending positions, as llama.cpp's GBNF sampler does) and says which bytes may come
// next. Grammars come from JSON Schema (json_schema.h); left recursion is not supported (the
// compiler never produces it).
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ember::grammar {

// A set of bytes.
struct ByteSet {
  std::array<uint64_t, 4> bits{};
  bool has(uint8_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
  ByteSet& add(uint8_t b) {
    bits[b >> 6] |= uint64_t(1) << (b & 63);
    return *this;
  }
  ByteSet& add_range(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) add(static_cast<uint8_t>(b));
    return *this;
  }
  static ByteSet of(std::string_view chars) {
    ByteSet s;
    for (char c : chars) s.add(static_cast<uint8_t>(c));
    return s;
  }
};

struct Element {
  int rule = -1;  // ≥ 0: a reference to that rule; else the byte set
  ByteSet bytes;
};
using Sequence = std::vector<Element>;

class Grammar {
 public:
  // A new rule with no alternatives yet; returns its id.
  int add_rule(std::string name);
  void add_alternative(int rule, Sequence alternative);  // an empty sequence matches nothing
  void set_root(int rule) { root_ = rule; }

  // Elements to build sequences with.
  static Element ref(int rule) { return {rule, {}}; }
  static Element bytes(ByteSet set) { return {-1, set}; }
  static Sequence literal(std::string_view text);  // one element per byte

  int root() const { return root_; }
  size_t size() const { return rules_.size(); }
  const std::vector<Sequence>& alternatives(int rule) const { return rules_[rule].alternatives; }
  const std::string& name(int rule) const { return rules_[rule].name; }

 private:
  struct Rule {
    std::string name;
    std::vector<Sequence> alternatives;
  };
  std::vector<Rule> rules_;
  int root_ = 0;
};

// A grammar so ambiguous that following it costs more than Matcher's budget allows (GBNF like
// (("a"{0,30}){0,30}){0,30}): the request is refused rather than followed for minutes.
class GrammarTooComplex : public std::runtime_error {
 public:
  GrammarTooComplex()
      : std::runtime_error(
            "the grammar is too ambiguous to follow (its repetitions can match the same text in "
            "too many ways)") {}
};

// Where the bytes seen so far can be in the grammar.
class Matcher {
 public:
  explicit Matcher(const Grammar& grammar);  // before any byte: at the start of the root rule

  // Expansion steps one byte may take (the constructor, advance()); throws GrammarTooComplex
  // past it.
  static constexpr size_t kStepBudget = size_t(1) << 16;
  // A stack this many positions deep counts as two steps, twice as deep as three, and so on.
  static constexpr size_t kPositionsPerStep = 4;

  // Consumes one byte; false (and the matcher unchanged) when the grammar does not allow it.
  bool advance(uint8_t byte);
  // Whether the bytes so far are a complete sentence of the grammar.
  bool accepting() const;
  // Whether more bytes may follow (false: the output is complete and nothing can extend it).
  bool can_continue() const;
  bool failed() const { return stacks_.empty(); }

  // Where the matcher could be (positions: rule, alternative, element index), for advance().
  struct Position {
    int rule, alternative, index;
    auto operator<=>(const Position&) const = default;
  };
  using Stack = std::vector<Position>;  // the top is the back

 private:
  friend class TokenTrie;
  Matcher(const Grammar& grammar, std::vector<Stack> stacks)
      : g_(&grammar), stacks_(std::move(stacks)) {}
  // Adds to `out` the stacks reachable from `stack` whose top is a byte set (an empty stack: the
  // sentence is complete).
  void expand(Stack stack, std::vector<Stack>& out, size_t& budget) const;
  std::vector<Stack> step(uint8_t byte, size_t& budget) const;

  const Grammar* g_;
  std::vector<Stack> stacks_;
};

}  // namespace ember::grammar
