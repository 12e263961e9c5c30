// `ember eval --model FILE --tokens 1,2,3 --logits-out OUT.bin [--batch N] [--cache f16|f32]
// [--backend auto|cpu|vulkan|opencl] [--device N] [--threads N]`:
// runs the tokens through the model and writes the logits of every position in the format of
// the shared test data: int32 n_tokens, int32 n_vocab, then n_tokens·n_vocab float32.
#include <cstdio>
#include <memory>
#include <sstream>
#include <thread>

#include "gguf/model_files.h"
#include "model/transformer.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {

int run_eval(const std::vector<std::string>& argv) {
  Args args(argv, with_backend_options({"model", "tokens", "logits-out", "batch", "cache", "lora"}),
            with_backend_flags({}));
  auto model = args.get("model");
  auto tokens_arg = args.get("tokens");
  auto out_path = args.get("logits-out");
  if (!model || !tokens_arg || !out_path)
    throw UsageError("--model, --tokens and --logits-out are required");
  std::vector<int32_t> tokens = parse_ids(*tokens_arg);
  if (tokens.empty()) throw UsageError("--tokens is empty");
  int batch = std::stoi(args.get("batch").value_or("0"));
  if (args.has("cache") && args.has("cache-type"))
    throw UsageError("give --cache-type (or its old name --cache), not both");
  model::CacheType cache;
  try {  // --cache: the name before --cache-type, and so ahead of EMBER_CACHE_TYPE too
    cache =
        args.has("cache") ? model::parse_cache_type(*args.get("cache")) : cache_type_option(args);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("--cache: ") + e.what());
  }

  gguf::ModelFiles files = gguf::ModelFiles::open(*model);
  model::Backends backends = model::make_backends(backend_spec(args));
  model::Transformer transformer(files, *backends.main, static_cast<int>(tokens.size()), cache, 1,
                                 backends.placement);
  attach_loras(transformer, files, args.get_all("lora"));
  std::vector<float> logits;
  const size_t step = batch > 0 ? static_cast<size_t>(batch) : tokens.size();
  for (size_t i = 0; i < tokens.size(); i += step) {
    std::vector<int32_t> chunk(tokens.begin() + i,
                               tokens.begin() + std::min(tokens.size(), i + step));
    std::vector<float> part = transformer.forward(chunk, true);
    logits.insert(logits.end(), part.begin(), part.end());
  }
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(out_path->c_str(), "wb"), &std::fclose);
  if (!f) throw std::runtime_error(*out_path + ": cannot create");
  int32_t header[2] = {static_cast<int32_t>(tokens.size()), transformer.n_vocab()};
  bool ok = std::fwrite(header, sizeof header, 1, f.get()) == 1 &&
            std::fwrite(logits.data(), sizeof(float), logits.size(), f.get()) == logits.size();
  if (!ok) throw std::runtime_error(*out_path + ": write failed");
  return 0;
}

}  // namespace ember::cli
