// Dequantisation equals the shared test data bit for bit: for every synthetic model, the first
// 1024 values of blk.0.attn_q.weight as an independent implementation dequantised them.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "gguf/model_files.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/reference.h"

namespace fs = std::filesystem;

namespace {
fs::path testdata() {
  const char* v = std::getenv("EMBER_TESTDATA");
  return v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA);
}
}  // namespace

TEST(Dequantize, MatchesSharedSamplesBitForBit) {
  int checked = 0;
  std::set<std::string> types_seen;
  for (const auto& entry : fs::directory_iterator(testdata() / "synthetic")) {
    std::string name = entry.path().filename().string();
    const std::string suffix = ".blk0_attn_q.first1024.f32";
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    std::string model = name.substr(0, name.size() - suffix.size()) + ".gguf";
    SCOPED_TRACE(model);
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<float> expected(1024);
    in.read(reinterpret_cast<char*>(expected.data()), 1024 * sizeof(float));
    ASSERT_TRUE(in.good());

    gguf::ModelFiles m = gguf::ModelFiles::open((testdata() / "synthetic" / model).string());
    const gguf::TensorInfo* t = m.find_tensor("blk.0.attn_q.weight");
    ASSERT_NE(t, nullptr);
    ASSERT_GE(t->elements(), 1024u);
    types_seen.insert(std::string(gguf::type_name(t->type)));
    std::vector<float> got(1024);
    ember::cpu::reference::dequantize_row(t->type, t->data, got.data(), 1024);
    EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), sizeof(float) * 1024));
    for (int i = 0; i < 1024; ++i)
      if (got[i] != expected[i]) {
        ADD_FAILURE() << "first difference at " << i << ": " << got[i] << " vs " << expected[i];
        break;
      }
    const ember::cpu::TypeKernels* k = ember::cpu::find_kernels(t->type);
    ASSERT_NE(k, nullptr);
    std::vector<float> via_kernels(1024);
    k->dequantize(t->data, via_kernels.data(), 1024);
    EXPECT_EQ(via_kernels, got);
    ++checked;
  }
  EXPECT_GE(checked, 20);
  for (const char* type : {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K",
                           "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"})
    EXPECT_TRUE(types_seen.count(type)) << type << " has no sample";
}
