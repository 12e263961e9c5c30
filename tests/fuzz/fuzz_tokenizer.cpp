// libFuzzer target for the tokenizer: random bytes through encode (special tokens parsed and not)
// and random ids through decode and the streaming decoder, for a SentencePiece and a byte-level
// BPE vocabulary (read from EMBER_TESTDATA, default ../shared/testdata).
#include <cstdlib>
#include <memory>
#include <string>

#include "gguf/model_files.h"
#include "model/text/tokenizer.h"

namespace {
std::unique_ptr<ember::text::Tokenizer> g_spm, g_bpe;

std::unique_ptr<ember::text::Tokenizer> load(const char* name) {
  const char* dir = std::getenv("EMBER_TESTDATA");
  std::string path = std::string(dir && *dir ? dir : EMBER_DEFAULT_TESTDATA) +
                     "/tokenizer/ggml-vocab-" + name + ".gguf";
  gguf::ModelFiles file = gguf::ModelFiles::open(path);
  return std::make_unique<ember::text::Tokenizer>(ember::text::Vocab::from_gguf(file.metadata()));
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_spm = load("llama-spm");
  g_bpe = load("deepseek-llm");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (auto* t : {g_spm.get(), g_bpe.get()}) {
    auto ids = t->encode(text, true, size % 2 == 0);
    if (t->decode(ids).size() > 16 * size + 64) __builtin_trap();
    std::vector<ember::text::TokenId> random_ids;
    for (size_t i = 0; i + 1 < size; i += 2)
      random_ids.push_back(static_cast<ember::text::TokenId>((data[i] << 8 | data[i + 1]) %
                                                             (t->vocab().size() + 3)) -
                           1);
    ember::text::StreamDecoder stream(*t, size % 3 == 0);
    std::string out;
    for (auto id : random_ids) out += stream.push(id);
    out += stream.finish();
  }
  return 0;
}
