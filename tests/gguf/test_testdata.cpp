// Every GGUF file of the shared test data and the real PyPI models opens. The field-by-field
// comparison with Python's gguf package is tests/gguf/test_vs_gguf_py.py.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "gguf/model_files.h"

namespace fs = std::filesystem;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

std::vector<fs::path> gguf_files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".gguf") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(GgufTestData, EverySyntheticAndTokenizerFileOpens) {
  fs::path root = env_or("EMBER_TESTDATA", EMBER_DEFAULT_TESTDATA);
  auto files = gguf_files_in(root / "synthetic");
  auto vocab = gguf_files_in(root / "tokenizer");
  ASSERT_GE(files.size(), 20u) << "no test data in " << root << " (set EMBER_TESTDATA)";
  ASSERT_GE(vocab.size(), 5u);
  files.insert(files.end(), vocab.begin(), vocab.end());
  for (const fs::path& p : files) {
    SCOPED_TRACE(p.string());
    gguf::ModelFiles m = gguf::ModelFiles::open(p.string());
    EXPECT_TRUE(m.metadata().get_string("general.architecture").has_value());
    EXPECT_TRUE(m.metadata().find("tokenizer.ggml.tokens") != nullptr);
  }
  gguf::ModelFiles f16 = gguf::ModelFiles::open((root / "synthetic/tiny-llama-f16.gguf").string());
  const gguf::TensorInfo* q = f16.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, gguf::TensorType::F16);
  EXPECT_EQ(q->shape[0], 256u);
  EXPECT_EQ(q->shape[1], 256u);
}

TEST(GgufTestData, RealModelsOpen) {
  fs::path cache = env_or("EMBER_MODEL_CACHE", env_or("HOME", "/root") + "/.cache/ember/models");
  for (const char* name : {"SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"}) {
    fs::path p = cache / name;
    ASSERT_TRUE(fs::exists(p)) << p << " is missing: run scripts/fetch-models.sh (make test does)";
    gguf::ModelFiles m = gguf::ModelFiles::open(p.string());
    EXPECT_GT(m.tensors().size(), 100u) << name;
    EXPECT_GT(m.metadata().find("tokenizer.ggml.tokens")->size(), 40000u) << name;
  }
}
