// Text generation: the state of one sequence's completion (sampler, end-of-generation tokens,
// stop strings, token limit, streaming text), and generate(), which runs one sequence on its own.
// The server's scheduler drives many Completions through one batched forward pass per step.
// Text is handed out as it becomes final: never a broken UTF-8 character, never the start of a
// stop string.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/grammar/grammar.h"
#include "model/grammar/token_trie.h"
#include "model/sampler.h"
#include "model/speculative.h"
#include "model/text/tokenizer.h"
#include "model/transformer.h"

namespace ember::model {

struct GenerateRequest {
  std::vector<text::TokenId> prompt;
  SamplingParams sampling;
  int max_tokens = 256;
  std::vector<std::string> stop;  // generation ends before the first of these strings
  int top_logprobs = -1;          // ≥ 0: record each token's log-probability and this many best
  bool ignore_eos = false;        // never sample an end-of-generation token (llama-server's field)
  // Structured output: only tokens the grammar allows are sampled, the end of generation only
  // once the output is complete, and generation stops when nothing can extend it. `trie` is the
  // vocabulary's (built once per model); both set or neither.
  std::shared_ptr<const grammar::Grammar> grammar;
  std::shared_ptr<const grammar::TokenTrie> trie;
  // Control tokens whose text is part of the output (tool-call and reasoning markers such as
  // [TOOL_CALLS] or <think> where the vocabulary makes them control tokens); others print nothing.
  std::vector<text::TokenId> shown_tokens;
  // Speculative decoding (speculative.h): up to this many tokens guessed per step and verified
  // together with the next one; 0: off. The output is the same either way, token for token.
  int speculative = 0;
  // Where the guesses come from: given the prompt and the tokens so far and a count, the tokens
  // guessed to follow (default: lookup_draft). Tests give wrong ones on purpose.
  DraftFn drafter;
};

// The log-probability of one generated token, and the best alternatives at its position.
struct TokenLogprob {
  text::TokenId token = 0;
  float logprob = 0;
  std::vector<std::pair<text::TokenId, float>> top;
};

struct GenerateResult {
  std::string text;
  std::vector<text::TokenId> tokens;   // the generated tokens (an end-of-generation token excluded)
  std::vector<TokenLogprob> logprobs;  // one per token when the request asked for them
  int prompt_tokens = 0;
  int completion_tokens = 0;
  std::string finish_reason;  // "stop" or "length"
  std::string stop_sequence;  // the stop string that ended it, if one did
  double prompt_seconds = 0, generation_seconds = 0;
  int draft_tokens = 0;     // speculative decoding: tokens guessed and verified
  int accepted_tokens = 0;  // of those, the ones the model chose too (each saved a step)
  int forward_passes = 0;   // passes of the model after the prompt's
  std::string draft_error;  // why guessing stopped part way (a draft model that failed), if it did
};

class Completion {
 public:
  Completion(const text::Tokenizer& tokenizer, GenerateRequest request);

  // Chooses the next token from `logits` (n_vocab floats; changed by the penalties). Returns
  // the text that became final with it; check finished() afterwards. With a grammar, throws
  // grammar::GrammarTooComplex, or std::runtime_error when no token can continue it.
  std::string step(std::vector<float>& logits);
  // Ends generation early (a client went away, the context is full): the text still held back
  // is returned, and finish_reason becomes `reason`.
  std::string finish(const std::string& reason);

  bool finished() const { return finished_; }
  text::TokenId last_token() const { return result_.tokens.back(); }  // the token to feed next
  const GenerateRequest& request() const { return request_; }
  // The prompt and the tokens chosen so far (what the penalties see; what prompt lookup reads).
  const std::vector<text::TokenId>& history() const { return history_; }
  GenerateResult& result() { return result_; }

 private:
  std::string hand_out(size_t upto);

  const text::Tokenizer& tokenizer_;
  GenerateRequest request_;
  Sampler sampler_;
  text::StreamDecoder decoder_;
  std::vector<text::TokenId> history_;  // prompt and output, for the penalties
  std::vector<std::string> stops_;
  std::optional<grammar::Matcher> matcher_;  // with a grammar
  std::vector<char> allowed_;                // its mask, reused between steps
  GenerateResult result_;
  size_t emitted_ = 0;  // bytes of result_.text handed out
  bool finished_ = false;
};

// Runs `request` on sequence 0 of `model` from an empty context. `on_text` receives text as it
// becomes final; returning false from it stops generation (finish_reason "stop").
GenerateResult generate(Transformer& model, const text::Tokenizer& tokenizer,
                        const GenerateRequest& request,
                        const std::function<bool(const std::string&)>& on_text = {});

}  // namespace ember::model
