// `ember bench grammar --model FILE`: what structured output costs per generated token — the time
// to build the vocabulary's byte trie once, and the time of one token mask (TokenTrie::allowed)
// at every byte of a sample JSON answer, split by where the byte is (inside a string, where
// nearly every token fits, or between values) — next to the model's vocabulary size.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "bench/bench.h"
#include "gguf/model_files.h"
#include "model/grammar/json_schema.h"
#include "model/grammar/token_trie.h"

namespace ember::bench {

int run_bench_grammar(const std::string& model) {
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
  std::printf("| %.2f ms | %.2f ms | %.2f ms |\n", in_string / std::max(n_string, 1),
              between / std::max(n_between, 1), (in_string + between) / answer.size());
  return 0;
}

}  // namespace ember::bench
