// Split models: NAME-0000i-of-0000N.gguf parts read as one model.
#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/error.h"
#include "gguf/model_files.h"
#include "gguf/writer.h"
#include "tests/gguf/sample_files.h"

namespace fs = std::filesystem;
using gguf::TensorType;

namespace {

class GgufSplit : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ember_split_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    prefix_ = (dir_ / "model").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes a 3-part model; part i holds tensor "t.i" of 8·(i+1) floats.
  void write_parts(int count = 3, int bad_no_part = -1) {
    for (int i = 0; i < count; ++i) {
      gguf::Writer w;
      if (i == 0) {
        w.set_string("general.architecture", "llama");
        w.set_i32("split.tensors.count", count);
      }
      w.set_u16("split.no", static_cast<uint16_t>(i == bad_no_part ? 7 : i));
      w.set_u16("split.count", static_cast<uint16_t>(count));
      w.add_tensor("t." + std::to_string(i), TensorType::F32, {uint64_t(8 * (i + 1))},
                   ember::test::pattern(32 * (i + 1), i));
      w.write_file(gguf::split_path(prefix_, i + 1, count));
    }
  }

  fs::path dir_;
  std::string prefix_;
};

}  // namespace

TEST(GgufSplitName, ParsesAndFormats) {
  auto s = gguf::parse_split_name("/m/Qwen3-30B-Q4_K_M-00002-of-00003.gguf");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->prefix, "/m/Qwen3-30B-Q4_K_M");
  EXPECT_EQ(s->index, 2);
  EXPECT_EQ(s->count, 3);
  EXPECT_EQ(gguf::split_path(s->prefix, 1, 3), "/m/Qwen3-30B-Q4_K_M-00001-of-00003.gguf");
  EXPECT_FALSE(gguf::parse_split_name("/m/model.gguf").has_value());
  EXPECT_FALSE(gguf::parse_split_name("/m/x-00004-of-00003.gguf").has_value());
  EXPECT_FALSE(gguf::parse_split_name("/m/x-00000-of-00003.gguf").has_value());
}

TEST_F(GgufSplit, AnyPartOpensTheWholeModel) {
  write_parts();
  for (int i = 1; i <= 3; ++i) {
    gguf::ModelFiles m = gguf::ModelFiles::open(gguf::split_path(prefix_, i, 3));
    ASSERT_EQ(m.parts().size(), 3u);
    ASSERT_EQ(m.tensors().size(), 3u);
    EXPECT_EQ(m.metadata().require_string("general.architecture"), "llama");
    for (int t = 0; t < 3; ++t) {
      const gguf::TensorInfo* info = m.find_tensor("t." + std::to_string(t));
      ASSERT_NE(info, nullptr);
      EXPECT_EQ(info->split, uint32_t(t));
      EXPECT_EQ(std::vector<uint8_t>(info->data, info->data + info->bytes),
                ember::test::pattern(32 * (t + 1), t));
    }
    EXPECT_EQ(m.total_tensor_bytes(), 32u * 6);
  }
}

TEST_F(GgufSplit, MissingPartIsNamed) {
  write_parts();
  fs::remove(gguf::split_path(prefix_, 2, 3));
  try {
    gguf::ModelFiles::open(gguf::split_path(prefix_, 1, 3));
    FAIL();
  } catch (const gguf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00003.gguf: cannot open"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(GgufSplit, WrongSplitNumberIsRejected) {
  write_parts(3, 1);
  EXPECT_THROW(gguf::ModelFiles::open(gguf::split_path(prefix_, 1, 3)), gguf::Error);
}

TEST_F(GgufSplit, SingleFileIsOnePart) {
  std::string path = (dir_ / "plain.gguf").string();
  ember::test::sample_writer().write_file(path);
  gguf::ModelFiles m = gguf::ModelFiles::open(path);
  EXPECT_EQ(m.parts().size(), 1u);
  EXPECT_EQ(m.tensors().size(), 5u);
}
