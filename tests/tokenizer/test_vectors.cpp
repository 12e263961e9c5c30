// The shared tokenizer test vectors: every string of every ggml-vocab-*.gguf.inp must encode to
// exactly the ids of the matching .out line (no BOS, special tokens not parsed), and decode back.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gguf/model_files.h"
#include "model/text/tokenizer.h"

namespace fs = std::filesystem;
using ember::text::TokenId;
using ember::text::Tokenizer;
using ember::text::Vocab;

namespace {

fs::path tokenizer_dir() {
  const char* v = std::getenv("EMBER_TESTDATA");
  return (v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA)) / "tokenizer";
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split_on(const std::string& text, const std::string& separator) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t hit = text.find(separator, pos);
    if (hit == std::string::npos) {
      out.push_back(text.substr(pos));
      return out;
    }
    out.push_back(text.substr(pos, hit - pos));
    pos = hit + separator.size();
  }
}

class TokenizerVectors : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(TokenizerVectors, EncodeExactly) {
  fs::path base = tokenizer_dir() / ("ggml-vocab-" + GetParam() + ".gguf");
  gguf::ModelFiles file = gguf::ModelFiles::open(base.string());
  Tokenizer tokenizer(Vocab::from_gguf(file.metadata()));
  EXPECT_TRUE(tokenizer.pre_tokenizer_known()) << tokenizer.vocab().pre;

  std::vector<std::string> inputs =
      split_on(read_all(base.string() + ".inp"), "\n__ggml_vocab_test__\n");
  std::vector<std::string> outputs = split_on(read_all(base.string() + ".out"), "\n");
  ASSERT_EQ(inputs.size(), outputs.size());
  int failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<TokenId> expected;
    std::istringstream line(outputs[i]);
    for (TokenId id; line >> id;) expected.push_back(id);
    std::vector<TokenId> got =
        tokenizer.encode(inputs[i], /*add_special=*/false, /*parse_special=*/false);
    if (got != expected && ++failures <= 8) {
      std::string g, e;
      for (TokenId id : got) g += std::to_string(id) + " ";
      for (TokenId id : expected) e += std::to_string(id) + " ";
      ADD_FAILURE() << "string #" << i << " [" << inputs[i] << "]\n  got:      " << g
                    << "\n  expected: " << e;
    }
  }
  EXPECT_EQ(failures, 0) << "of " << inputs.size() << " strings";
}

INSTANTIATE_TEST_SUITE_P(SharedVocabularies, TokenizerVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "falcon", "deepseek-llm"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });
