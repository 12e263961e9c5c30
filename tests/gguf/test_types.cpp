#include <gtest/gtest.h>

#include <set>
#include <string>

#include "gguf/types.h"

TEST(GgufTypes, TableIsConsistent) {
  std::set<uint32_t> ids;
  std::set<std::string> names;
  for (auto* t = gguf::all_types().begin; t != gguf::all_types().end; ++t) {
    EXPECT_TRUE(ids.insert(static_cast<uint32_t>(t->type)).second) << t->name;
    EXPECT_TRUE(names.insert(std::string(t->name)).second) << t->name;
    EXPECT_GT(t->block_size, 0u);
    EXPECT_GT(t->block_bytes, 0u);
    EXPECT_EQ(gguf::find_type(static_cast<uint32_t>(t->type)), t);
  }
  EXPECT_GE(ids.size(), 38u);
}

TEST(GgufTypes, KnownLayouts) {
  EXPECT_EQ(gguf::traits(gguf::TensorType::Q4_0).block_bytes, 18u);
  EXPECT_EQ(gguf::traits(gguf::TensorType::Q4_K).block_size, 256u);
  EXPECT_EQ(gguf::traits(gguf::TensorType::Q4_K).block_bytes, 144u);
  EXPECT_EQ(gguf::traits(gguf::TensorType::Q6_K).block_bytes, 210u);
  EXPECT_EQ(gguf::traits(gguf::TensorType::IQ4_XS).block_bytes, 136u);
  EXPECT_EQ(gguf::bytes_for(gguf::TensorType::Q8_0, 64), 68u);
  EXPECT_EQ(gguf::bytes_for(gguf::TensorType::BF16, 3), 6u);
}

TEST(GgufTypes, LookupByNameAndUnknownIds) {
  EXPECT_EQ(gguf::type_from_name("q4_k"), gguf::TensorType::Q4_K);
  EXPECT_EQ(gguf::type_from_name("IQ4_NL"), gguf::TensorType::IQ4_NL);
  EXPECT_FALSE(gguf::type_from_name("Q4_2").has_value());
  EXPECT_EQ(gguf::find_type(4), nullptr);  // Q4_2, removed from ggml long ago
  EXPECT_EQ(gguf::find_type(1000), nullptr);
}
