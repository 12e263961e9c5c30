#include "model/grammar/grammar.h"

#include <algorithm>
#include <stdexcept>

namespace ember::grammar {

int Grammar::add_rule(std::string name) {
  rules_.push_back({std::move(name), {}});
  return static_cast<int>(rules_.size()) - 1;
}

void Grammar::add_alternative(int rule, Sequence alternative) {
  rules_.at(rule).alternatives.push_back(std::move(alternative));
}

Sequence Grammar::literal(std::string_view text) {
  Sequence s;
  for (char c : text) s.push_back(bytes(ByteSet().add(static_cast<uint8_t>(c))));
  return s;
}

Matcher::Matcher(const Grammar& grammar) : g_(&grammar) {
  size_t budget = kStepBudget;
  for (int a = 0; a < static_cast<int>(grammar.alternatives(grammar.root()).size()); ++a)
    expand({{grammar.root(), a, 0}}, stacks_, budget);
  std::sort(stacks_.begin(), stacks_.end());
  stacks_.erase(std::unique(stacks_.begin(), stacks_.end()), stacks_.end());
}

void Matcher::expand(Stack start, std::vector<Stack>& out, size_t& budget) const {
  // Iterative (a sequence of many empty rules would otherwise recurse once per rule). Ambiguous
  // nullable rules can reach the same stacks along exponentially many paths: past the budget
  // the grammar is refused rather than followed for minutes.
  auto finished = [&](const Stack& s) {
    const Position& p = s.back();
    return p.index == static_cast<int>(g_->alternatives(p.rule)[p.alternative].size());
  };
  // Most stacks (inside a string, say) already have a byte set on top: no work list for them.
  while (!start.empty() && finished(start)) start.pop_back();
  if (start.empty() ||
      g_->alternatives(start.back().rule)[start.back().alternative][start.back().index].rule < 0) {
    out.push_back(std::move(start));
    return;
  }
  std::vector<Stack> work{std::move(start)};
  while (!work.empty()) {
    // A step costs more the deeper its stack (it is copied per alternative): a grammar whose
    // recursion deepens with every byte (`obj ::= .* (. root)*`) would otherwise stay inside the
    // budget while each byte costs seconds.
    const size_t cost = 1 + work.back().size() / kPositionsPerStep;
    if (budget < cost) throw GrammarTooComplex();
    budget -= cost;
    Stack stack = std::move(work.back());
    work.pop_back();
    // Finished positions are popped first, so recursive repetitions do not grow the stack.
    while (!stack.empty() && finished(stack)) stack.pop_back();
    if (stack.empty()) {
      out.push_back(std::move(stack));
      continue;
    }
    const Position p = stack.back();
    const Element& e = g_->alternatives(p.rule)[p.alternative][p.index];
    if (e.rule < 0) {
      out.push_back(std::move(stack));
      continue;
    }
    stack.back().index++;  // the continuation after the referenced rule
    while (!stack.empty() && finished(stack)) stack.pop_back();
    const int n = static_cast<int>(g_->alternatives(e.rule).size());
    for (int a = n - 1; a >= 0; --a) {
      Stack s = stack;
      s.push_back({e.rule, a, 0});
      work.push_back(std::move(s));
    }
  }
}

std::vector<Matcher::Stack> Matcher::step(uint8_t byte, size_t& budget) const {
  std::vector<Stack> next;
  for (const Stack& s : stacks_) {
    if (s.empty()) continue;
    const Position p = s.back();
    if (!g_->alternatives(p.rule)[p.alternative][p.index].bytes.has(byte)) continue;
    Stack moved = s;
    moved.back().index++;
    expand(std::move(moved), next, budget);
  }
  if (next.size() > 1) {
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
  }
  // A very ambiguous grammar (unions of near-identical schemas nested deep) could multiply the
  // ways to continue without bound: past kMaxStacks some are dropped. What remains still only
  // allows valid output; it may allow less of it.
  constexpr size_t kMaxStacks = 1024;
  if (next.size() > kMaxStacks) next.resize(kMaxStacks);
  return next;
}

bool Matcher::advance(uint8_t byte) {
  size_t budget = kStepBudget;
  std::vector<Stack> next = step(byte, budget);
  if (next.empty()) return false;
  stacks_ = std::move(next);
  return true;
}

bool Matcher::accepting() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

bool Matcher::can_continue() const {
  return std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return !s.empty(); });
}

}  // namespace ember::grammar
