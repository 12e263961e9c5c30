// Writer → reader round trips: every value type, tensors of several types and ranks, both
// format versions, custom alignment, files on disk, and copying a file key by key.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "gguf/error.h"
#include "gguf/reader.h"
#include "gguf/writer.h"
#include "tests/gguf/sample_files.h"

using ember::test::pattern;
using gguf::TensorType;
using gguf::ValueType;

TEST(GgufRoundTrip, EveryValueType) {
  std::vector<uint8_t> bytes = ember::test::sample_bytes();
  gguf::Contents c = gguf::parse(bytes);
  const gguf::Metadata& m = c.metadata;
  EXPECT_EQ(c.version, 3u);
  EXPECT_EQ(m.require_string("general.architecture"), "llama");
  EXPECT_EQ(m.find("test.u8")->type(), ValueType::U8);
  EXPECT_EQ(m.get_int("test.u8"), 200);
  EXPECT_EQ(m.get_int("test.i8"), -100);
  EXPECT_EQ(m.get_int("test.u16"), 60000);
  EXPECT_EQ(m.get_int("test.i16"), -30000);
  EXPECT_EQ(m.get_int("llama.block_count"), 2);
  EXPECT_EQ(m.get_int("test.i32"), -2000000000);
  EXPECT_EQ(m.find("test.u64")->as_uint(), 18000000000000000000ull);
  EXPECT_EQ(m.get_int("test.i64"), -9000000000000000000ll);
  EXPECT_EQ(m.get_double("llama.rope.freq_base"), 10000.0);
  EXPECT_EQ(m.get_double("test.f64"), 0.1);
  EXPECT_EQ(m.get_bool("test.bool"), true);
  EXPECT_FALSE(m.get_int("no.such.key").has_value());
  EXPECT_THROW(m.require_int("no.such.key"), gguf::Error);
  EXPECT_THROW(m.get_int("general.name"), gguf::Error);  // a string is not an int
  EXPECT_THROW(m.get_string("test.u8"), gguf::Error);    // nor an int a string
  EXPECT_THROW(m.get_bool("test.u8"), gguf::Error);

  const gguf::Value* tokens = m.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->element_type(), ValueType::STRING);
  ASSERT_EQ(tokens->size(), 6u);
  EXPECT_EQ(tokens->string_at(3), "hello");
  EXPECT_EQ(tokens->string_at(4), "");
  EXPECT_EQ(tokens->string_at(5), "\xe4\xb8\x96");
  EXPECT_EQ(m.find("tokenizer.ggml.scores")->numbers<float>(),
            (std::vector<float>{0, -1.5f, 2.25f}));
  EXPECT_EQ(m.find("tokenizer.ggml.token_type")->numbers<int>(), (std::vector<int>{2, 3, 3, 1}));
  const gguf::Value* nested = m.find("test.nested");
  ASSERT_EQ(nested->element_type(), ValueType::ARRAY);
  ASSERT_EQ(nested->size(), 2u);
  EXPECT_EQ(nested->array_at(0).numbers<int>(), (std::vector<int>{1, 2}));
  EXPECT_EQ(nested->array_at(1).size(), 0u);
  EXPECT_EQ(nested->to_display_string(), "[[1, 2], []]");
}

TEST(GgufRoundTrip, TensorsKeepShapeTypeAndBytes) {
  std::vector<uint8_t> bytes = ember::test::sample_bytes();
  gguf::Contents c = gguf::parse(bytes);
  ASSERT_EQ(c.tensors.size(), 5u);
  const gguf::TensorInfo* q = c.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, TensorType::Q4_K);
  EXPECT_EQ(q->n_dims, 2u);
  EXPECT_EQ(q->shape[0], 256u);
  EXPECT_EQ(q->shape[1], 5u);
  EXPECT_EQ(q->rows(), 5u);
  EXPECT_EQ(q->bytes, 5u * 144);
  EXPECT_EQ(std::vector<uint8_t>(q->data, q->data + q->bytes), pattern(5 * 144, 4));
  const gguf::TensorInfo* e = c.find_tensor("blk.0.ffn_up_exps.weight");
  EXPECT_EQ(e->n_dims, 3u);
  EXPECT_EQ(e->elements(), 32u * 3 * 2);
  const gguf::TensorInfo* b = c.find_tensor("odd.bf16");
  EXPECT_EQ(b->n_dims, 4u);
  EXPECT_EQ(std::vector<uint8_t>(b->data, b->data + b->bytes), pattern(42, 5));
  for (const gguf::TensorInfo& t : c.tensors) {
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ(t.file_offset, c.data_offset + t.offset);
    EXPECT_EQ(t.data, bytes.data() + t.file_offset);
  }
  EXPECT_EQ(c.data_offset % 32, 0u);
  EXPECT_EQ(c.find_tensor("missing"), nullptr);
}

TEST(GgufRoundTrip, VersionTwoAndCustomAlignment) {
  gguf::Writer w = ember::test::sample_writer();
  w.set_version(2);
  w.set_alignment(256);
  std::vector<uint8_t> bytes = w.to_bytes();
  gguf::Contents c = gguf::parse(bytes);
  EXPECT_EQ(c.version, 2u);
  EXPECT_EQ(c.alignment, 256u);
  EXPECT_EQ(c.data_offset % 256, 0u);
  for (const gguf::TensorInfo& t : c.tensors) EXPECT_EQ(t.offset % 256, 0u) << t.name;
}

TEST(GgufRoundTrip, FileOnDiskAndCopyKeyByKey) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("ember_rt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string path = (dir / "a.gguf").string();
  ember::test::sample_writer().write_file(path);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  gguf::File f = gguf::File::open(path);
  EXPECT_EQ(f.size(), fs::file_size(path));

  gguf::Writer copy;
  for (const gguf::KeyValue& kv : f.metadata().entries()) copy.set_value(kv.key, kv.value);
  for (const gguf::TensorInfo& t : f.tensors())
    copy.add_tensor(t.name, t.type,
                    std::vector<uint64_t>(t.shape.begin(), t.shape.begin() + t.n_dims),
                    std::vector<uint8_t>(t.data, t.data + t.bytes));
  EXPECT_EQ(copy.to_bytes(), ember::test::sample_bytes());
  fs::remove_all(dir);
}

TEST(GgufRoundTrip, WriterRejectsWrongSizes) {
  gguf::Writer w;
  EXPECT_THROW(w.add_tensor("x", TensorType::Q4_0, {33}, std::vector<uint8_t>(18)), gguf::Error);
  EXPECT_THROW(w.add_tensor("x", TensorType::Q4_0, {32}, std::vector<uint8_t>(17)), gguf::Error);
  EXPECT_THROW(w.add_tensor("x", TensorType::F32, {}, {}), gguf::Error);
  EXPECT_THROW(w.set_alignment(48), gguf::Error);
}

TEST(GgufRoundTrip, OpenReportsMissingFile) {
  try {
    gguf::File::open("/nonexistent/model.gguf");
    FAIL();
  } catch (const gguf::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf: cannot open"), std::string::npos)
        << e.what();
  }
}
