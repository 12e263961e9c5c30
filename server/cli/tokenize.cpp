// `ember tokenize` and `ember detokenize`: the model's tokenizer on the command line.
//   ember tokenize --model FILE (--text TEXT | --file F) [--no-bos] [--special]
//   ember detokenize --model FILE --ids 1,2,3 [--special]
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gguf/model_files.h"
#include "model/text/tokenizer.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {
namespace {

text::Tokenizer load_tokenizer(const Args& args) {
  auto path = args.get("model");
  if (!path) throw UsageError("--model FILE is required");
  gguf::ModelFiles file = gguf::ModelFiles::open(*path);
  text::Tokenizer tokenizer(text::Vocab::from_gguf(file.metadata()));
  if (!tokenizer.pre_tokenizer_known())
    std::fprintf(stderr, "ember: warning: unknown pre-tokenizer '%s', using 'default'\n",
                 tokenizer.vocab().pre.c_str());
  return tokenizer;
}

}  // namespace

int run_tokenize(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "text", "file"}, {"no-bos", "special"});
  if (args.has("text") == args.has("file"))
    throw UsageError("give exactly one of --text and --file");
  std::string text;
  if (auto t = args.get("text")) {
    text = *t;
  } else {
    std::ifstream in(*args.get("file"), std::ios::binary);
    if (!in) throw std::runtime_error(*args.get("file") + ": cannot read");
    std::stringstream s;
    s << in.rdbuf();
    text = s.str();
  }
  text::Tokenizer tokenizer = load_tokenizer(args);
  std::vector<text::TokenId> ids = tokenizer.encode(text, !args.has("no-bos"), args.has("special"));
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  std::puts(out.c_str());
  return 0;
}

int run_detokenize(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "ids"}, {"special"});
  auto list = args.get("ids");
  if (!list) throw UsageError("--ids 1,2,3 is required");
  std::vector<text::TokenId> ids = parse_ids(*list);
  text::Tokenizer tokenizer = load_tokenizer(args);
  for (text::TokenId id : ids)
    if (id < 0 || id >= static_cast<text::TokenId>(tokenizer.vocab().size()))
      throw std::runtime_error("token id " + std::to_string(id) +
                               " is outside the vocabulary (0.." +
                               std::to_string(tokenizer.vocab().size() - 1) + ")");
  std::string text = tokenizer.decode(ids, args.has("special"));
  std::fwrite(text.data(), 1, text.size(), stdout);  // exactly the text: no newline added
  return 0;
}

}  // namespace ember::cli
