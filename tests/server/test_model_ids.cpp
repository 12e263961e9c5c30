// Model ids and aliases from file names (SPEC.md).
#include <gtest/gtest.h>

#include "server/model_registry.h"

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
