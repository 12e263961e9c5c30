// `ember chat --model FILE [--system TEXT] [--temperature T] [--max-tokens N] [--seed S]`: an
// interactive conversation on the terminal. Each line you type is a user message; the answer
// streams back and joins the conversation. /reset starts over, /exit (or end of input) quits.
#include <unistd.h>
#include <cstdio>
#include <iostream>
#include <string>

#include "gguf/model_files.h"
#include "model/chat/chat_template.h"
#include "model/generate.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {

int run_chat(const std::vector<std::string>& argv) {
  Args args(argv,
            with_backend_options({"model", "system", "temperature", "max-tokens", "seed", "ctx"}),
            with_backend_flags({}));
  auto path = args.get("model");
  if (!path) throw UsageError("--model is required");
  gguf::ModelFiles files = gguf::ModelFiles::open(*path);
  text::Tokenizer tokenizer(text::Vocab::from_gguf(files.metadata()));
  chat::ChatTemplate chat = chat::ChatTemplate::for_model(files.metadata(), tokenizer.vocab());
  const int n_ctx = std::stoi(args.get("ctx").value_or("4096"));
  model::Backends backends = model::make_backends(backend_spec(args));
  model::Transformer transformer(files, *backends.main, n_ctx, cache_type_option(args), 1,
                                 backends.placement);

  model::SamplingParams sampling;
  if (auto t = args.get("temperature")) sampling.temperature = std::stof(*t);
  if (auto s = args.get("seed")) sampling.seed = std::stoull(*s);
  const int max_tokens = std::stoi(args.get("max-tokens").value_or("512"));

  chat::jinja::Array history;
  if (auto system = args.get("system")) history.push_back(chat::chat_message("system", *system));
  const size_t fresh = history.size();
  const bool terminal = isatty(0);
  if (terminal)
    std::fprintf(stderr, "ember chat (%s template). /reset starts over, /exit quits.\n",
                 chat.name().c_str());

  for (std::string line;;) {
    if (terminal) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line == "/reset") {
      history.resize(fresh);
      continue;
    }
    if (line.empty()) continue;
    history.push_back(chat::chat_message("user", line));
    model::GenerateRequest request;
    request.prompt = tokenizer.encode_prompt(chat.render(chat::jinja::Value(history), true), true);
    if (static_cast<int>(request.prompt.size()) >= n_ctx) {
      std::fprintf(
          stderr,
          "ember chat: the conversation no longer fits in %d tokens; /reset to start over\n",
          n_ctx);
      history.pop_back();
      continue;
    }
    request.sampling = sampling;
    request.max_tokens = std::min(max_tokens, n_ctx - static_cast<int>(request.prompt.size()));
    model::GenerateResult result = model::generate(transformer, tokenizer, request, print_piece);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    history.push_back(chat::chat_message("assistant", result.text));
  }
  return 0;
}

}  // namespace ember::cli
