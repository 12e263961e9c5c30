#include "model/speculative.h"

#include <algorithm>

namespace ember::model {

std::vector<text::TokenId> lookup_draft(const std::vector<text::TokenId>& context, int max_tokens,
                                        int max_ngram, int min_ngram) {
  const int n = static_cast<int>(context.size());
  if (max_tokens <= 0) return {};
  for (int g = std::min(max_ngram, n - 1); g >= std::max(1, min_ngram); --g) {
    // The pattern is context[n-g, n); candidates start at i < n - g, most recent first.
    for (int i = n - g - 1; i >= 0; --i) {
      if (!std::equal(context.begin() + i, context.begin() + i + g, context.end() - g)) continue;
      const int from = i + g, to = std::min(n, from + max_tokens);
      if (from >= to) continue;
      return {context.begin() + from, context.begin() + to};
    }
  }
  return {};
}

Drafter::Drafter(int max_tokens, DraftFn fn)
    : max_(std::max(0, max_tokens)), budget_(max_), fn_(std::move(fn)) {}

std::vector<text::TokenId> Drafter::guess(const std::vector<text::TokenId>& context, int room) {
  if (max_ == 0 || room <= 0) return {};
  if (budget_ == 0) {
    if (++paused_ < 8) return {};
    paused_ = 0;
    budget_ = 1;
  }
  const int want = std::min(budget_, room);
  std::vector<text::TokenId> out;
  try {
    out = fn_ ? fn_(context, want) : lookup_draft(context, want);
  } catch (const std::exception& e) {
    error_ = e.what();
    max_ = 0;
    return {};
  }
  if (static_cast<int>(out.size()) > want) out.resize(static_cast<size_t>(want));
  return out;
}

void Drafter::outcome(size_t guessed, size_t taken) {
  if (guessed == 0) return;
  if (taken == 0)
    budget_ /= 2;
  else if (taken == guessed)
    budget_ = std::min(max_, budget_ * 2);
}

}  // namespace ember::model
