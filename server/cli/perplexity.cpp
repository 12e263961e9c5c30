// `ember perplexity --model FILE --file TEXT.txt [--ctx N]`: exp of the mean negative
// log-likelihood of every token of the text given the ones before it, over consecutive windows
// of N tokens (each window starts a fresh context with BOS when the vocabulary adds one).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "gguf/model_files.h"
#include "model/text/tokenizer.h"
#include "model/transformer.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {

int run_perplexity(const std::vector<std::string>& argv) {
  Args args(argv, with_backend_options({"model", "file", "ctx"}), with_backend_flags({}));
  auto path = args.get("model");
  auto file = args.get("file");
  if (!path || !file) throw UsageError("--model and --file are required");
  std::ifstream in(*file, std::ios::binary);
  if (!in) throw std::runtime_error(*file + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  const int ctx = std::stoi(args.get("ctx").value_or("512"));
  if (ctx < 2) throw UsageError("--ctx must be at least 2");

  gguf::ModelFiles files = gguf::ModelFiles::open(*path);
  text::Tokenizer tokenizer(text::Vocab::from_gguf(files.metadata()));
  std::vector<text::TokenId> tokens = tokenizer.encode(text.str(), false, false);
  const text::Vocab& v = tokenizer.vocab();
  const bool bos = v.add_bos && v.bos >= 0;
  model::Backends backends = model::make_backends(backend_spec(args));
  model::Transformer transformer(files, *backends.main, ctx, cache_type_option(args), 1,
                                 backends.placement);

  double nll = 0;
  int64_t counted = 0;
  const int window = ctx - (bos ? 1 : 0);  // text tokens per window
  for (size_t start = 0; start + 1 < tokens.size(); start += window) {
    std::vector<text::TokenId> chunk;
    if (bos) chunk.push_back(v.bos);
    size_t end = std::min(tokens.size(), start + window);
    chunk.insert(chunk.end(), tokens.begin() + start, tokens.begin() + end);
    transformer.reset();
    std::vector<float> logits = transformer.forward(chunk, true);
    const int n_vocab = transformer.n_vocab();
    // Position i predicts chunk[i + 1]; without BOS the first token of a window is not scored.
    for (size_t i = 0; i + 1 < chunk.size(); ++i) {
      const float* row = logits.data() + i * n_vocab;
      float max = *std::max_element(row, row + n_vocab);
      double sum = 0;
      for (int k = 0; k < n_vocab; ++k) sum += std::exp(double(row[k]) - max);
      nll += std::log(sum) + max - row[chunk[i + 1]];
      ++counted;
    }
  }
  if (counted == 0) throw std::runtime_error("the text has fewer than two tokens");
  std::printf("perplexity: %.4f over %lld tokens (ctx %d)\n", std::exp(nll / counted),
              static_cast<long long>(counted), ctx);
  return 0;
}

}  // namespace ember::cli
