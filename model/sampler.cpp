#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "kernels/cpu/kernels.h"

namespace ember::model {

std::vector<text::TokenId> top_ids(const std::vector<float>& logits, size_t k) {
  const size_t n = logits.size();
  k = std::min(k, n);
  // `a` before `b`: the larger logit, or of equal ones the lower id.
  auto before = [&](text::TokenId a, text::TokenId b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::vector<text::TokenId> ids;
  if (k * 4 >= n) {  // most of them: sorting is as cheap
    ids.resize(n);
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), before);
    ids.resize(k);
    return ids;
  }
  // A heap of the best k so far with the worst on top; a later logit equal to the worst loses
  // (its id is larger), so only a larger one enters. Most logits fall below the threshold, and
  // a block of 16 costs one vectorised comparison.
  ids.resize(k);
  std::iota(ids.begin(), ids.end(), 0);
  std::make_heap(ids.begin(), ids.end(), before);
  float threshold = logits[ids.front()];
  auto offer = [&](size_t i) {
    if (!(logits[i] > threshold)) return;
    std::pop_heap(ids.begin(), ids.end(), before);
    ids.back() = static_cast<text::TokenId>(i);
    std::push_heap(ids.begin(), ids.end(), before);
    threshold = logits[ids.front()];
  };
  constexpr size_t kBlock = 16;
  size_t i = k;
  for (; i + kBlock <= n; i += kBlock) {
    bool any = false;
    for (size_t j = 0; j < kBlock; ++j) any |= logits[i + j] > threshold;
    if (any)
      for (size_t j = 0; j < kBlock; ++j) offer(i + j);
  }
  for (; i < n; ++i) offer(i);
  std::sort(ids.begin(), ids.end(), before);
  return ids;
}

Sampler::Sampler(SamplingParams params) : params_(params), rng_(params.seed) {}

text::TokenId Sampler::sample(std::vector<float>& logits,
                              const std::vector<text::TokenId>& history) {
  const SamplingParams& p = params_;
  // Penalties over the last penalty_last_n tokens.
  if (p.repeat_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    std::unordered_map<text::TokenId, int> counts;
    size_t from = history.size() > size_t(p.penalty_last_n) ? history.size() - p.penalty_last_n : 0;
    for (size_t i = from; i < history.size(); ++i) counts[history[i]]++;
    for (auto [id, count] : counts) {
      if (id < 0 || id >= static_cast<text::TokenId>(logits.size())) continue;
      float& l = logits[id];
      if (p.repeat_penalty != 1.0f) l = l > 0 ? l / p.repeat_penalty : l * p.repeat_penalty;
      l -= p.presence_penalty + p.frequency_penalty * static_cast<float>(count);
    }
  }
  if (p.temperature <= 0.0f)  // vectorised: Gemma's 262k logits took 0.2 ms with max_element
    return static_cast<text::TokenId>(
        cpu::vector_ops().argmax(logits.data(), static_cast<int64_t>(logits.size())));

  // Candidates sorted by logit; top-k keeps the first k.
  size_t keep = p.top_k > 0 ? std::min<size_t>(p.top_k, logits.size()) : logits.size();
  const std::vector<text::TokenId> ids = top_ids(logits, keep);
  // Softmax with temperature.
  std::vector<double> probs(keep);
  const double max_logit = logits[ids[0]];
  double sum = 0;
  for (size_t i = 0; i < keep; ++i)
    sum += probs[i] = std::exp((logits[ids[i]] - max_logit) / p.temperature);
  for (double& q : probs) q /= sum;
  // min-p: drop tokens far less likely than the best.
  if (p.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && probs[n] >= p.min_p * probs[0]) ++n;
    keep = n;
  }
  // top-p: the smallest prefix whose mass reaches top_p.
  if (p.top_p < 1.0f) {
    double mass = 0;
    size_t n = 0;
    while (n < keep) {
      mass += probs[n++];
      if (mass >= p.top_p) break;
    }
    keep = n;
  }
  std::discrete_distribution<size_t> pick(probs.begin(), probs.begin() + keep);
  return ids[pick(rng_)];
}

}  // namespace ember::model
