// `ember bench grammar --model FILE`: what structured output costs per generated token — the time
// to build the vocabulary's byte trie once, and the time of one token mask (TokenTrie::allowed)
// at every byte of a sample JSON answer, split by where the byte is (inside a string, where
// nearly every token fits, or between values) — next to the model's vocabulary size; then
// generation itself with and without a JSON schema (greedy, the same prompt, the end-of-text
// token ignored so that the free run is as long as the constrained one may be), tokens/s
// counting everything per token: forward pass, mask and sampling.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench/bench.h"
#include "gguf/model_files.h"
#include "model/backends/make_backend.h"
#include "model/generate.h"
#include "model/grammar/json_schema.h"
#include "model/grammar/token_trie.h"

namespace ember::bench {

namespace {

// Greedy generation of up to n_gen tokens, the best of `repeat` runs: tokens per second of the
// generation phase and the tokens generated.
std::pair<double, int> generation_rate(model::Transformer& t, const text::Tokenizer& tokenizer,
                                       const std::vector<text::TokenId>& prompt, int n_gen,
                                       std::shared_ptr<const grammar::Grammar> g,
                                       std::shared_ptr<const grammar::TokenTrie> trie, int repeat) {
  model::GenerateRequest request;
  request.prompt = prompt;
  request.max_tokens = n_gen;
  request.sampling.temperature = 0;
  request.ignore_eos = true;
  request.grammar = std::move(g);
  request.trie = std::move(trie);
  double best = 0;
  int tokens = 0;
  for (int r = 0; r < repeat; ++r) {
    const model::GenerateResult result = model::generate(t, tokenizer, request);
    tokens = result.completion_tokens;
    best = std::max(best, result.completion_tokens / result.generation_seconds);
  }
  return {best, tokens};
}

}  // namespace

int run_bench_grammar(const std::string& model, int threads, int n_gen) {
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a) {
    return std::chrono::duration<double, std::milli>(Clock::now() - a).count();
  };
  gguf::ModelFiles files = gguf::ModelFiles::open(model);
  text::Tokenizer tokenizer(text::Vocab::from_gguf(files.metadata()));
  auto start = Clock::now();
  grammar::TokenTrie trie(tokenizer);
  const double build = ms(start);
  const grammar::Grammar g = grammar::json_object_grammar();
  const std::string answer =
      R"({"name": "Paris", "country": "France", "population": 2102650, "landmarks": ["Eiffel Tower", "Louvre"], "capital": true})";
  grammar::Matcher m(g);
  std::vector<char> mask;
  double in_string = 0, between = 0;
  int n_string = 0, n_between = 0;
  bool quoted = false;
  for (char c : answer) {
    start = Clock::now();
    trie.allowed(m, mask);
    const double t = ms(start);
    (quoted ? in_string : between) += t;
    (quoted ? n_string : n_between) += 1;
    if (c == '"') quoted = !quoted;
    m.advance(static_cast<uint8_t>(c));
  }
  std::printf("model: %s, vocabulary %zu tokens; trie built in %.1f ms\n", model.c_str(),
              tokenizer.vocab().size(), build);
  std::printf("| mask inside a string | mask between values | mean over the answer |\n");
  std::printf("| %.2f ms | %.2f ms | %.2f ms |\n\n", in_string / std::max(n_string, 1),
              between / std::max(n_between, 1), (in_string + between) / answer.size());

  model::Backends backends = model::make_backends({"cpu", -1, threads});
  model::Transformer t(files, *backends.main, 512, model::CacheType::kF16, 1, backends.placement);
  const std::vector<text::TokenId> prompt = tokenizer.encode(
      "Describe Paris as JSON with a long description and many facts:\n", true, false);
  const auto schema = std::make_shared<const grammar::Grammar>(grammar::grammar_from_schema(
      nlohmann::ordered_json::parse(R"({"type": "object", "properties": {
        "description": {"type": "string"}, "facts": {"type": "array", "items": {"type": "string"}}},
        "required": ["description", "facts"]})")));
  const auto shared_trie = std::make_shared<const grammar::TokenTrie>(tokenizer);
  const auto [free_rate, free_tokens] =
      generation_rate(t, tokenizer, prompt, n_gen, nullptr, nullptr, 3);
  const auto [json_rate, json_tokens] =
      generation_rate(t, tokenizer, prompt, n_gen, schema, shared_trie, 3);
  std::printf("generation, %d threads, best of 3:\n", threads);
  std::printf("| unconstrained | json_schema | ratio |\n");
  std::printf("| %.1f tokens/s (%d tokens) | %.1f tokens/s (%d tokens) | %.0f%% |\n", free_rate,
              free_tokens, json_rate, json_tokens, 100 * json_rate / free_rate);
  return 0;
}

}  // namespace ember::bench
