// LoRA adapters applied unmerged (W·x + s·(alpha/rank)·B·(A·x)) against the same model with the
// adapter merged into its weights by ember's writer (F32), on tiny-llama and on phi3's fused
// q/k/v; scale 0 is the base model; sequences with different scales in one batch get what they
// get alone; an adapter for another model is refused.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "gguf/model_files.h"
#include "gguf/writer.h"
#include "kernels/cpu/reference.h"
#include "model/backends/cpu_backend.h"
#include "model/transformer.h"

namespace fs = std::filesystem;
using namespace ember;

namespace {

fs::path testdata() {
  const char* v = std::getenv("EMBER_TESTDATA");
  return v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA);
}

fs::path temp(const std::string& name) {
  return fs::temp_directory_path() / ("ember-lora-" + std::to_string(::getpid()) + "-" + name);
}

std::vector<float> dequantized(const gguf::TensorInfo& t) {
  std::vector<float> v(t.elements());
  cpu::reference::dequantize_row(t.type, t.data, v.data(), static_cast<int64_t>(t.elements()));
  return v;
}

std::vector<uint8_t> bytes_of(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

struct Adapted {
  std::string name;         // base tensor
  std::vector<float> a, b;  // A: rank × n_in, B: n_out × rank (row-major)
  uint64_t n_in, n_out;
};

constexpr int kRank = 4;
constexpr float kAlpha = 8;  // factor alpha / rank = 2

// Writes an F32 copy of `source` (`merge_scale` > 0: with the adapter merged in) and the adapter.
void write_files(const fs::path& source, const std::vector<std::string>& names, float merge_scale,
                 const fs::path& model_out, const fs::path& adapter_out,
                 const std::string& adapter_arch = "") {
  gguf::ModelFiles src = gguf::ModelFiles::open(source.string());
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<Adapted> adapted;
  for (const std::string& n : names) {
    const gguf::TensorInfo* t = src.find_tensor(n);
    Adapted x{n, {}, {}, t->shape[0], t->shape[1]};
    for (uint64_t i = 0; i < kRank * x.n_in; ++i) x.a.push_back(normal(rng));
    for (uint64_t i = 0; i < x.n_out * kRank; ++i) x.b.push_back(normal(rng));
    adapted.push_back(std::move(x));
  }
  gguf::Writer model;
  for (const gguf::KeyValue& kv : src.metadata().entries()) model.set_value(kv.key, kv.value);
  for (const gguf::TensorInfo& t : src.tensors()) {
    std::vector<float> w = dequantized(t);
    for (const Adapted& x : adapted) {
      if (x.name != t.name || merge_scale == 0) continue;
      const float s = merge_scale * kAlpha / kRank;
      for (uint64_t o = 0; o < x.n_out; ++o)
        for (uint64_t i = 0; i < x.n_in; ++i) {
          double d = 0;
          for (int r = 0; r < kRank; ++r) d += double(x.b[o * kRank + r]) * x.a[r * x.n_in + i];
          w[o * x.n_in + i] += static_cast<float>(s * d);
        }
    }
    model.add_tensor(t.name, gguf::TensorType::F32,
                     std::vector<uint64_t>(t.shape.begin(), t.shape.begin() + t.n_dims),
                     bytes_of(w));
  }
  model.write_file(model_out.string());
  gguf::Writer adapter;
  adapter.set_string("general.architecture",
                     adapter_arch.empty()
                         ? std::string(src.metadata().require_string("general.architecture"))
                         : adapter_arch);
  adapter.set_string("general.type", "adapter");
  adapter.set_string("adapter.type", "lora");
  adapter.set_f32("adapter.lora.alpha", kAlpha);
  for (const Adapted& x : adapted) {
    adapter.add_tensor(x.name + ".lora_a", gguf::TensorType::F32, {x.n_in, kRank}, bytes_of(x.a));
    adapter.add_tensor(x.name + ".lora_b", gguf::TensorType::F32, {kRank, x.n_out}, bytes_of(x.b));
  }
  adapter.write_file(adapter_out.string());
}

std::vector<int32_t> prompt() {
  return {1, 334, 973, 157, 407, 669, 52, 77, 843, 551, 99, 377, 599, 62, 934, 522};
}

// Logits of every prompt position; with `adapter` at `scale` when given.
std::vector<float> run(const fs::path& model, const fs::path& adapter = {}, float scale = 0) {
  gguf::ModelFiles files = gguf::ModelFiles::open(model.string());
  model::CpuBackend backend(2);
  model::Transformer t(files, backend, 64, model::CacheType::kF32);
  if (!adapter.empty())
    t.add_lora(model::LoraAdapter::open(adapter.string(), files, t.hparams()), scale);
  return t.forward(prompt(), true);
}

double relative_rms(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += std::pow(double(a[i]) - b[i], 2);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

void check_against_merged(const fs::path& source, const std::vector<std::string>& names) {
  const fs::path base = temp("base.gguf"), merged = temp("merged.gguf"), adapter = temp("a.gguf"),
                 unused = temp("unused.gguf");
  write_files(source, names, 0, base, adapter);
  write_files(source, names, 0.7f, merged, unused);  // same random adapter (same seed)
  const std::vector<float> with_adapter = run(base, adapter, 0.7f), want = run(merged);
  const std::vector<float> plain = run(base), scale0 = run(base, adapter, 0);
  EXPECT_LE(relative_rms(with_adapter, want), 1e-4);
  EXPECT_GT(relative_rms(plain, want), 1e-2);  // the adapter does change the answer
  EXPECT_EQ(scale0, plain);                    // scale 0: the base model, bit for bit
  for (const fs::path& p : {base, merged, adapter, unused}) fs::remove(p);
}

}  // namespace

TEST(Lora, UnmergedEqualsMergedOnLlama) {
  check_against_merged(testdata() / "synthetic" / "tiny-llama-f16.gguf",
                       {"blk.0.attn_q.weight", "blk.1.attn_v.weight", "blk.2.ffn_down.weight",
                        "blk.3.ffn_gate.weight", "output.weight"});
}

TEST(Lora, FusedWeightsTakeTheirRowsOfB) {
  check_against_merged(
      testdata() / "synthetic-b2" / "tiny-phi3-f16.gguf",
      {"blk.0.attn_qkv.weight", "blk.1.ffn_up.weight", "blk.2.attn_output.weight"});
}

// Sequences with different scales share a batch: each gets the logits it gets alone.
TEST(Lora, ScalesArePerSequence) {
  const fs::path base = temp("base.gguf"), adapter = temp("a.gguf");
  write_files(testdata() / "synthetic" / "tiny-llama-f16.gguf", {"blk.0.attn_q.weight"}, 0, base,
              adapter);
  gguf::ModelFiles files = gguf::ModelFiles::open(base.string());
  model::CpuBackend backend(2);
  model::Transformer t(files, backend, 64, model::CacheType::kF32, 2);
  t.add_lora(model::LoraAdapter::open(adapter.string(), files, t.hparams()), 1.0f);
  t.set_lora_scales(1, {0.0f});
  model::Batch batch;
  for (size_t i = 0; i < prompt().size(); ++i)
    for (int seq = 0; seq < 2; ++seq) batch.add(prompt()[i], static_cast<int32_t>(i), seq, true);
  const std::vector<float> both = t.decode(batch);
  const std::vector<float> alone1 = run(base, adapter, 1.0f), alone0 = run(base);
  const size_t n_vocab = alone0.size() / prompt().size();
  for (size_t i = 0; i < prompt().size(); ++i) {
    EXPECT_TRUE(std::equal(alone1.begin() + i * n_vocab, alone1.begin() + (i + 1) * n_vocab,
                           both.begin() + (2 * i) * n_vocab));
    EXPECT_TRUE(std::equal(alone0.begin() + i * n_vocab, alone0.begin() + (i + 1) * n_vocab,
                           both.begin() + (2 * i + 1) * n_vocab));
  }
  fs::remove(base);
  fs::remove(adapter);
}

TEST(Lora, AdaptersForAnotherModelAreRefused) {
  const fs::path base = temp("base.gguf"), adapter = temp("a.gguf"), other = temp("other.gguf");
  write_files(testdata() / "synthetic" / "tiny-llama-f16.gguf", {"blk.0.attn_q.weight"}, 0, base,
              adapter, "qwen2");
  gguf::ModelFiles files = gguf::ModelFiles::open(base.string());
  model::CpuBackend backend(1);
  model::Transformer t(files, backend, 64);
  try {
    model::LoraAdapter::open(adapter.string(), files, t.hparams());
    ADD_FAILURE() << "an adapter for qwen2 was accepted for llama";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'qwen2'"), std::string::npos) << e.what();
  }
  // Same architecture, other widths: tiny-llama's ffn_up [256, 768] on tiny-llama3's [256, 512].
  write_files(testdata() / "synthetic" / "tiny-llama-f16.gguf", {"blk.0.ffn_up.weight"}, 0, other,
              adapter);
  gguf::ModelFiles llama3 =
      gguf::ModelFiles::open((testdata() / "synthetic-b2" / "tiny-llama3-f16.gguf").string());
  model::Transformer t3(llama3, backend, 64);
  try {
    model::LoraAdapter::open(adapter.string(), llama3, t3.hparams());
    ADD_FAILURE() << "an adapter with other shapes was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit"), std::string::npos) << e.what();
  }
  for (const fs::path& p : {base, adapter, other}) fs::remove(p);
}
