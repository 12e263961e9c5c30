// Model ids and aliases from file names (SPEC.md), and the registry's view of a directory.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "gguf/model_files.h"
#include "gguf/writer.h"
#include "server/model_registry.h"
#include "tests/gguf/sample_files.h"

using ember::server::alias_for;
using ember::server::model_id_for;

TEST(ModelIds, FromFileNames) {
  EXPECT_EQ(model_id_for("tinyllama-1.1b-chat-v1.0.Q2_K.gguf"), "tinyllama-1.1b-chat-v1.0.q2-k");
  EXPECT_EQ(model_id_for("SmolLM2-135M-Instruct.Q4_1.gguf"), "smollm2-135m-instruct.q4-1");
  EXPECT_EQ(model_id_for("gemma-3-270m-q4_k_m.gguf"), "gemma-3-270m-q4-k-m");
  EXPECT_EQ(model_id_for("Big_Model-Q4_K_M-00001-of-00003.gguf"), "big-model-q4-k-m");
  EXPECT_EQ(model_id_for("plain.GGUF"), "plain");
}

TEST(ModelIds, AliasesDropTheQuantisation) {
  EXPECT_EQ(alias_for("tinyllama-1.1b-chat-v1.0.q2-k"), "tinyllama-1.1b-chat-v1.0");
  EXPECT_EQ(alias_for("smollm2-135m-instruct.q4-1"), "smollm2-135m-instruct");
  EXPECT_EQ(alias_for("gemma-3-270m-q4-k-m"), "gemma-3-270m");
  EXPECT_EQ(alias_for("model-iq4-xs"), "model");
  EXPECT_EQ(alias_for("model.f16"), "model");
  EXPECT_EQ(alias_for("model-bf16"), "model");
  EXPECT_EQ(alias_for("plain"), "");
  EXPECT_EQ(alias_for("q4-0"), "");
}

// A split set is one model under the name of its first part; a lone part of a set is skipped.
TEST(ModelRegistry, SplitSetsAreOneModel) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ember_registry_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string prefix = (dir / "Big_Model-Q4_K_M").string();
  for (int i = 0; i < 3; ++i) {
    gguf::Writer w;
    if (i == 0) {
      w.set_string("general.architecture", "llama");
      w.set_i32("split.tensors.count", 3);
    }
    w.set_u16("split.no", static_cast<uint16_t>(i));
    w.set_u16("split.count", 3);
    w.add_tensor("t." + std::to_string(i), gguf::TensorType::F32, {8},
                 ember::test::pattern(32, static_cast<uint32_t>(i)));
    w.write_file(gguf::split_path(prefix, i + 1, 3));
  }
  gguf::Writer single;
  single.set_string("general.architecture", "qwen2");
  single.add_tensor("w", gguf::TensorType::F32, {4}, ember::test::pattern(16, 9));
  single.write_file((dir / "Other-F16.gguf").string());

  ember::server::RegistrySources sources;
  sources.dirs = {dir.string()};
  ember::server::ModelRegistry registry(sources);
  EXPECT_EQ(registry.rescan(), 2u);
  auto big = registry.find("big-model-q4-k-m");
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->parts, 3);
  EXPECT_EQ(big->arch, "llama");
  EXPECT_EQ(registry.find("big-model")->id, "big-model-q4-k-m");  // the alias
  EXPECT_EQ(registry.find("OTHER")->id, "other-f16");
  EXPECT_EQ(registry.id_for_path((dir / "Other-F16.gguf").string()), "other-f16");

  // A file rewritten in place is parsed again (scans reuse what is unchanged).
  gguf::Writer rewritten;
  rewritten.set_string("general.architecture", "gemma3");
  rewritten.add_tensor("w", gguf::TensorType::F32, {8}, ember::test::pattern(32, 9));
  rewritten.write_file((dir / "Other-F16.gguf").string());
  EXPECT_EQ(registry.rescan(), 2u);
  EXPECT_EQ(registry.find("other-f16")->arch, "gemma3");

  fs::remove(gguf::split_path(prefix, 2, 3));  // an incomplete set is not a model
  EXPECT_EQ(registry.rescan(), 1u);
  EXPECT_FALSE(registry.find("big-model-q4-k-m").has_value());
  fs::remove_all(dir);
}
