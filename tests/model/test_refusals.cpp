// Nothing that changes the arithmetic is ignored: a model file with a key or tensor ember does not
// implement for its architecture fails to load with a message naming it. Each case is a copy of
// tiny-llama-f16 (or tiny-gemma3-f16) written with ember's own writer plus one such thing; the
// unchanged copy loads, so each refusal is the addition's doing.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "gguf/model_files.h"
#include "gguf/writer.h"
#include "model/backends/cpu_backend.h"
#include "model/transformer.h"

namespace fs = std::filesystem;
using namespace ember;

namespace {

// "FILE" in synthetic/, or "SET/FILE".
fs::path synthetic(const std::string& file) {
  const char* v = std::getenv("EMBER_TESTDATA");
  const fs::path root = v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA);
  return file.find('/') == std::string::npos ? root / "synthetic" / file : root / file;
}

// Copies `source` with `change` applied to the writer (after the original keys and tensors),
// loads it, and returns the load error ("" when it loads).
std::string load_error(const std::string& source, const std::function<void(gguf::Writer&)>& change,
                       const std::string& skip_key = "") {
  gguf::ModelFiles original = gguf::ModelFiles::open(synthetic(source).string());
  gguf::Writer w;
  for (const gguf::KeyValue& kv : original.metadata().entries())
    if (kv.key != skip_key) w.set_value(kv.key, kv.value);
  for (const gguf::TensorInfo& t : original.tensors())
    w.add_tensor(t.name, t.type, std::vector<uint64_t>(t.shape.begin(), t.shape.begin() + t.n_dims),
                 std::vector<uint8_t>(t.data, t.data + t.bytes));
  change(w);
  const fs::path path =
      fs::temp_directory_path() / ("ember-refusal-" + std::to_string(::getpid()) + ".gguf");
  w.write_file(path.string());
  std::string error;
  try {
    gguf::ModelFiles files = gguf::ModelFiles::open(path.string());
    model::CpuBackend backend(1);
    model::Transformer t(files, backend, 64);
  } catch (const std::exception& e) {
    error = e.what();
  }
  fs::remove(path);
  return error;
}

std::vector<uint8_t> f32_zeros(size_t n) {
  return std::vector<uint8_t>(n * 4, 0);
}

}  // namespace

TEST(Refusals, UnchangedCopiesLoad) {
  EXPECT_EQ(load_error("tiny-llama-f16.gguf", [](gguf::Writer&) {}), "");
  EXPECT_EQ(load_error("tiny-gemma3-f16.gguf", [](gguf::Writer&) {}), "");
}

TEST(Refusals, KeysThatChangeTheArithmetic) {
  struct Case {
    const char* key;
    std::function<void(gguf::Writer&)> add;
  };
  const Case cases[] = {
      {"llama.rope.scaling.type",
       [](gguf::Writer& w) { w.set_string("llama.rope.scaling.type", "dynamic"); }},
      {"llama.attn_logit_softcapping",
       [](gguf::Writer& w) { w.set_f32("llama.attn_logit_softcapping", 50); }},
      {"llama.final_logit_softcapping",
       [](gguf::Writer& w) { w.set_f32("llama.final_logit_softcapping", 30); }},
      {"llama.attention.sliding_window",
       [](gguf::Writer& w) { w.set_u32("llama.attention.sliding_window", 4096); }},
      {"llama.expert_gating_func",
       [](gguf::Writer& w) { w.set_u32("llama.expert_gating_func", 2); }},
      {"llama.logit_scale", [](gguf::Writer& w) { w.set_f32("llama.logit_scale", 0.0625f); }},
      {"llama.attention.layer_norm_epsilon",
       [](gguf::Writer& w) { w.set_f32("llama.attention.layer_norm_epsilon", 1e-5f); }},
      {"llama.attention.causal",
       [](gguf::Writer& w) { w.set_bool("llama.attention.causal", false); }},
      {"llama.attention.value_length",
       [](gguf::Writer& w) { w.set_u32("llama.attention.value_length", 32); }},
      {"llama.rope.scaling.yarn_ext_factor",
       [](gguf::Writer& w) {
         w.set_string("llama.rope.scaling.type", "yarn");
         w.set_f32("llama.rope.scaling.factor", 4);
         w.set_f32("llama.rope.scaling.yarn_ext_factor", 0.5f);
       }},
  };
  for (const Case& c : cases) {
    const std::string error = load_error("tiny-llama-f16.gguf", c.add);
    EXPECT_NE(error.find(c.key), std::string::npos) << c.key << ": '" << error << "'";
  }
  // gemma3 has sliding windows but no soft-caps.
  const std::string error = load_error("tiny-gemma3-f16.gguf", [](gguf::Writer& w) {
    w.set_f32("gemma3.final_logit_softcapping", 30);
  });
  EXPECT_NE(error.find("gemma3.final_logit_softcapping"), std::string::npos) << error;
}

TEST(Refusals, TensorsTheArchitectureDoesNotUse) {
  for (const char* name : {"blk.0.attn_q.bias", "blk.1.ffn_gate_inp.weight", "blk.0.weird.weight",
                           "blk.0.attn_q_norm.weight"}) {
    const std::string error = load_error("tiny-llama-f16.gguf", [&](gguf::Writer& w) {
      w.add_tensor(name, gguf::TensorType::F32, {256}, f32_zeros(256));
    });
    EXPECT_NE(error.find(std::string("'") + name + "'"), std::string::npos) << error;
  }
  // Only one of LongRoPE's factor lists.
  const std::string error = load_error("tiny-llama-f16.gguf", [](gguf::Writer& w) {
    w.add_tensor("rope_factors_long.weight", gguf::TensorType::F32, {32}, f32_zeros(32));
  });
  EXPECT_NE(error.find("rope_factors_short"), std::string::npos) << error;
}

// A vision tower stored in the same file does not change the text model's arithmetic.
TEST(Refusals, VisionTowerTensorsAreKnownToBeUnused) {
  EXPECT_EQ(load_error("tiny-gemma3-f16.gguf",
                       [](gguf::Writer& w) {
                         w.add_tensor("v.blk.0.attn_q.weight", gguf::TensorType::F32, {16},
                                      f32_zeros(16));
                         w.add_tensor("mm.input_projection.weight", gguf::TensorType::F32, {16},
                                      f32_zeros(16));
                       }),
            "");
}

TEST(Refusals, UnsupportedArchitecturesListTheSupportedOnes) {
  const std::string error = load_error(
      "tiny-llama-f16.gguf",
      [](gguf::Writer& w) { w.set_string("general.architecture", "falcon"); },
      "general.architecture");
  EXPECT_NE(error.find("'falcon' is not supported"), std::string::npos) << error;
  EXPECT_NE(error.find("phi3"), std::string::npos) << error;
}

// phi3 files from llama.cpp's converter carry attention.sliding_window (2047, or 0 for Phi-4),
// which is not applied (WindowPattern::kUnused): they load, and within the window nothing
// changes; a window base or pattern on phi3 means something ember does not do.
TEST(Refusals, Phi3WindowKeyIsReadNotApplied) {
  EXPECT_EQ(load_error("synthetic-b2/tiny-phi3-f16.gguf",
                       [](gguf::Writer& w) { w.set_u32("phi3.attention.sliding_window", 2047); }),
            "");
  const std::string error = load_error("synthetic-b2/tiny-phi3-f16.gguf", [](gguf::Writer& w) {
    w.set_f32("phi3.rope.freq_base_swa", 10000);
  });
  EXPECT_NE(error.find("phi3.rope.freq_base_swa"), std::string::npos) << error;
}
