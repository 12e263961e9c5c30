// `ember generate`: one completion on the terminal, streamed as it is generated.
//   ember generate --model FILE --prompt TEXT [--chat] [--system TEXT] [--max-tokens N]
//                  [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]
//                  [--seed S] [--threads N] [--ctx N] [--lora FILE[:SCALE]]... [--stats]
//                  [--speculative N] [--draft-model FILE]
//                  [--backend auto|cpu|vulkan|opencl] [--device N]
#include <cstdio>
#include <optional>

#include "gguf/model_files.h"
#include "model/chat/chat_template.h"
#include "model/draft_model.h"
#include "model/generate.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {

int run_generate(const std::vector<std::string>& argv) {
  Args args(argv,
            with_backend_options({"model", "prompt", "system", "max-tokens", "temperature", "top-k",
                                  "top-p", "min-p", "repeat-penalty", "seed", "ctx", "lora",
                                  "speculative", "draft-model"}),
            with_backend_flags({"chat", "stats"}));
  auto path = args.get("model");
  auto prompt = args.get("prompt");
  if (!path || !prompt) throw UsageError("--model and --prompt are required");
  model::SamplingParams sampling;
  auto num = [&](const char* name, auto fallback) {
    auto v = args.get(name);
    try {
      return v ? static_cast<decltype(fallback)>(std::stod(*v)) : fallback;
    } catch (const std::exception&) {
      throw UsageError(std::string("--") + name + " needs a number");
    }
  };
  sampling.temperature = num("temperature", sampling.temperature);
  sampling.top_k = num("top-k", sampling.top_k);
  sampling.top_p = num("top-p", sampling.top_p);
  sampling.min_p = num("min-p", sampling.min_p);
  sampling.repeat_penalty = num("repeat-penalty", sampling.repeat_penalty);
  sampling.seed = args.has("seed") ? std::stoull(*args.get("seed")) : sampling.seed;

  gguf::ModelFiles files = gguf::ModelFiles::open(*path);
  text::Tokenizer tokenizer(text::Vocab::from_gguf(files.metadata()));
  std::string text = *prompt;
  if (args.has("chat")) {
    chat::ChatTemplate chat = chat::ChatTemplate::for_model(files.metadata(), tokenizer.vocab());
    chat::jinja::Array messages;
    if (auto system = args.get("system")) messages.push_back(chat::chat_message("system", *system));
    messages.push_back(chat::chat_message("user", text));
    text = chat.render(chat::jinja::Value(messages), true);
  }
  model::GenerateRequest request;
  request.prompt = tokenizer.encode_prompt(text, args.has("chat"));
  request.sampling = sampling;
  request.max_tokens = num("max-tokens", 256);
  // A draft model guesses 8 tokens ahead unless --speculative says otherwise.
  const auto draft_path = args.get("draft-model");
  request.speculative = num("speculative", draft_path ? 8 : 0);
  if (request.speculative < 0 || request.speculative > 64)
    throw UsageError("--speculative: tokens guessed per step, from 0 (off) to 64");
  int n_ctx = num("ctx", 0);
  if (n_ctx <= 0)
    n_ctx = std::min<int>(4096, static_cast<int>(request.prompt.size()) + request.max_tokens);

  const model::BackendSpec spec = backend_spec(args);
  const model::CacheType cache = cache_type_option(args);
  model::Backends backends = model::make_backends(spec);
  model::Transformer transformer(files, *backends.main, n_ctx, cache, 1, backends.placement);
  attach_loras(transformer, files, args.get_all("lora"));
  // The draft model (draft_model.h): its own cache, on the target's threads or device.
  std::optional<model::LoadedDraft> draft;
  std::optional<model::DraftModel> drafter;
  if (draft_path && request.speculative > 0) {
    draft.emplace(*draft_path, tokenizer.vocab(), spec, backends, transformer, cache, 1);
    drafter.emplace(draft->transformer, draft->vocab, 0, transformer.n_vocab());
    request.drafter = drafter->fn();
  }
  model::GenerateResult result = model::generate(transformer, tokenizer, request, print_piece);
  std::fputc('\n', stdout);
  if (!result.draft_error.empty())
    std::fprintf(stderr, "ember: guessing stopped part way (the output is unchanged): %s\n",
                 result.draft_error.c_str());
  if (args.has("stats"))
    std::fprintf(
        stderr,
        "prompt: %d tokens, %.1f tokens/s; generation: %d tokens, %.1f tokens/s; finish: %s\n",
        result.prompt_tokens, result.prompt_tokens / std::max(result.prompt_seconds, 1e-9),
        result.completion_tokens,
        result.completion_tokens / std::max(result.generation_seconds, 1e-9),
        result.finish_reason.c_str());
  if (args.has("stats") && request.speculative > 0)
    std::fprintf(stderr,
                 "speculative: %d tokens guessed, %d taken (%.0f%%); %d forward passes for %d "
                 "tokens\n",
                 result.draft_tokens, result.accepted_tokens,
                 100.0 * result.accepted_tokens / std::max(result.draft_tokens, 1),
                 result.forward_passes, result.completion_tokens);
  return 0;
}

}  // namespace ember::cli
