// Text generation on one sequence: prompt processing in one batch, then one token per step,
// with the sampler, end-of-generation tokens, stop strings and a token limit. Text is handed
// out as it becomes final (never a broken UTF-8 character, never the start of a stop string).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/sampler.h"
#include "model/tokenizer.h"
#include "model/transformer.h"

namespace ember::model {

struct GenerateRequest {
  std::vector<TokenId> prompt;
  SamplingParams sampling;
  int max_tokens = 256;
  std::vector<std::string> stop;  // generation ends before the first of these strings
};

struct GenerateResult {
  std::string text;
  std::vector<TokenId> tokens;  // the generated tokens (an end-of-generation token excluded)
  int prompt_tokens = 0;
  int completion_tokens = 0;
  std::string finish_reason;  // "stop" or "length"
  double prompt_seconds = 0, generation_seconds = 0;
};

// Runs `request` from an empty context. `on_text` receives text as it becomes final; returning
// false from it stops generation (finish_reason "stop").
GenerateResult generate(Transformer& model, const Tokenizer& tokenizer,
                        const GenerateRequest& request,
                        const std::function<bool(const std::string&)>& on_text = {});

}  // namespace ember::model
