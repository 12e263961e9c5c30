// Picks the next token from the logits: greedy at temperature 0, else penalties, temperature,
// top-k, top-p and min-p, then a draw from a seeded generator (same seed, same tokens).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "model/text/vocab.h"

namespace ember::model {

struct SamplingParams {
  float temperature = 0.8f;  // 0: greedy
  int top_k = 40;            // 0: off
  float top_p = 0.95f;       // 1: off
  float min_p = 0.05f;       // 0: off; drops tokens below min_p × the top probability
  float repeat_penalty =
      1.0f;  // 1: off; divides positive logits of recent tokens (llama.cpp's rule)
  float presence_penalty = 0.0f;   // subtracted once from tokens seen
  float frequency_penalty = 0.0f;  // subtracted per occurrence
  int penalty_last_n = 64;         // how many recent tokens the penalties look at
  uint64_t seed = 0xe3be7ull;
};

// The ids of the k largest logits, largest first; of equal logits the lower id first. O(n) for
// k much smaller than n (one comparison per logit against the k-th largest so far).
std::vector<text::TokenId> top_ids(const std::vector<float>& logits, size_t k);

class Sampler {
 public:
  explicit Sampler(SamplingParams params);
  // Chooses a token from `logits` (n_vocab floats, modified in place by the penalties) given
  // the tokens so far (prompt and output) for the penalties.
  text::TokenId sample(std::vector<float>& logits, const std::vector<text::TokenId>& history);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace ember::model
