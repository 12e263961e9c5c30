// `ember bench speculative --model FILE [--draft-model FILE] [--speculative 4,8] [-n 128]`:
// greedy generation with speculative decoding off and at each guess count, on prompts whose
// answer repeats their input (a function to rewrite, a paragraph to return with a typo fixed)
// and one whose answer does not (an open question: what failed guesses cost). Guesses come from
// prompt lookup, or from the draft model when one is given (model/speculative.h,
// model/draft_model.h). Per prompt and count: tokens/s of the generation phase (best of
// `repeat`), the speed-up over no guessing, and how many guesses were taken.
#include <algorithm>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "bench/bench.h"
#include "gguf/model_files.h"
#include "model/chat/chat_template.h"
#include "model/draft_model.h"
#include "model/generate.h"

namespace ember::bench {
namespace {

struct Prompt {
  const char* name;
  const char* text;
};

const Prompt kPrompts[] = {
    {"rewrite a function",
     "Rewrite this Python function to use a list comprehension; keep the name and the "
     "docstring:\n\ndef even_squares(numbers):\n    \"\"\"The squares of the even numbers, in "
     "order.\"\"\"\n    result = []\n    for n in numbers:\n        if n % 2 == 0:\n            "
     "result.append(n * n)\n    return result\n"},
    {"fix a typo",
     "Fix the typo and repeat the paragraph otherwise unchanged: The quick brown fox jumps over "
     "the lazy dog. It was a sunny day in the valley, and the farmers were busy harvesting the "
     "wheat before the rain came. Teh children played near the river while their parents "
     "worked in the fields."},
    {"open question", "Why is the sky blue? Explain it to a child."},
};

}  // namespace

int run_bench_speculative(const SpeculativeBenchOptions& o) {
  gguf::ModelFiles files = gguf::ModelFiles::open(o.model);
  text::Tokenizer tokenizer(text::Vocab::from_gguf(files.metadata()));
  std::optional<chat::ChatTemplate> chat;
  if (o.chat) chat.emplace(chat::ChatTemplate::for_model(files.metadata(), tokenizer.vocab()));
  model::Backends backends = model::make_backends(o.backend);
  const int n_ctx = 1024;
  model::Transformer t(files, *backends.main, n_ctx, o.cache, 1, backends.placement);
  std::optional<model::LoadedDraft> draft;
  std::optional<model::DraftModel> drafter;
  if (!o.draft_model.empty()) {
    draft.emplace(o.draft_model, tokenizer.vocab(), o.backend, backends, t, o.cache, 1);
    drafter.emplace(draft->transformer, draft->vocab, 0, t.n_vocab());
  }
  std::printf("model: %s; guesses from %s; greedy, %d tokens at most, %d threads, best of %d\n",
              o.model.c_str(), drafter ? o.draft_model.c_str() : "prompt lookup", o.n_gen,
              o.backend.threads, o.repeat);
  std::printf("| prompt | off |");
  for (int n : o.counts) std::printf(" %d guesses | taken |", n);
  std::printf("\n| --- | --- |");
  for (size_t i = 0; i < o.counts.size(); ++i) std::printf(" --- | --- |");
  std::printf("\n");
  for (const Prompt& p : kPrompts) {
    std::string text = p.text;
    if (chat)
      text = chat->render(chat::jinja::Value(chat::jinja::Array{chat::chat_message("user", text)}),
                          true);
    model::GenerateRequest request;
    request.prompt = tokenizer.encode_prompt(text, chat.has_value());
    request.max_tokens = o.n_gen;
    request.sampling.temperature = 0;
    // Tokens/s of the generation phase, best of `repeat`, and the last run's result.
    auto measure = [&](int count) {
      request.speculative = count;
      request.drafter = count > 0 && drafter ? drafter->fn() : model::DraftFn{};
      double best = 0;
      model::GenerateResult last;
      for (int r = 0; r < o.repeat; ++r) {
        last = model::generate(t, tokenizer, request);
        best = std::max(best, last.completion_tokens / std::max(last.generation_seconds, 1e-9));
      }
      return std::make_pair(best, last);
    };
    const auto [off, plain] = measure(0);
    std::printf("| %s (%d tokens) | %.1f |", p.name, plain.completion_tokens, off);
    for (int count : o.counts) {
      const auto [rate, result] = measure(count);
      if (result.tokens != plain.tokens)  // never expected: the output is exact (speculative.h)
        throw std::runtime_error("speculative decoding changed the output");
      std::printf(" %.1f (%.2f×) | %d of %d |", rate, rate / off, result.accepted_tokens,
                  result.draft_tokens);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace ember::bench
