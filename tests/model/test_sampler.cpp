// Sampling and the generation loop: greedy, seeded reproducibility, the filters, penalties,
// stop strings (text cut before them, never streamed) and the token limit.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "gguf/model_files.h"
#include "model/backends/cpu_backend.h"
#include "model/generate.h"
#include "model/sampler.h"

namespace fs = std::filesystem;
using namespace ember::model;
using namespace ember::text;

namespace {

std::vector<float> ramp(int n) {  // logits 0, 0.1, 0.2, ...: the last token is the most likely
  std::vector<float> l(n);
  for (int i = 0; i < n; ++i) l[i] = 0.1f * i;
  return l;
}

}  // namespace

TEST(Sampler, TemperatureZeroIsGreedy) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p);
  std::vector<float> l = ramp(50);
  EXPECT_EQ(s.sample(l, {}), 49);
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 0, p.top_p = 1, p.min_p = 0;
  p.seed = 42;
  Sampler a(p), b(p);
  p.seed = 43;
  Sampler c(p);
  std::vector<TokenId> ta, tb, tc;
  for (int i = 0; i < 200; ++i) {
    std::vector<float> l1 = ramp(50), l2 = ramp(50), l3 = ramp(50);
    ta.push_back(a.sample(l1, {}));
    tb.push_back(b.sample(l2, {}));
    tc.push_back(c.sample(l3, {}));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
  EXPECT_GT(std::set<TokenId>(ta.begin(), ta.end()).size(), 10u);  // it really samples
}

TEST(Sampler, FiltersLimitTheCandidates) {
  SamplingParams p;
  p.temperature = 5.0f, p.top_p = 1, p.min_p = 0;
  p.top_k = 3;
  Sampler k(p);
  for (int i = 0; i < 300; ++i) {
    std::vector<float> l = ramp(50);
    EXPECT_GE(k.sample(l, {}), 47);
  }
  p.top_k = 0;
  p.min_p = 0.5f;  // with logits 10 and 0s, only token 7 survives
  Sampler m(p);
  for (int i = 0; i < 100; ++i) {
    std::vector<float> l(20, 0.0f);
    l[7] = 10.0f;
    EXPECT_EQ(m.sample(l, {}), 7);
  }
}

TEST(Sampler, PenaltiesPushRepeatedTokensDown) {
  SamplingParams p;
  p.temperature = 0;
  p.repeat_penalty = 2.0f;  // 4.9 / 2 < 4.8
  Sampler r(p);
  std::vector<float> l = ramp(50);
  EXPECT_EQ(r.sample(l, {49, 49}), 48);
  p.repeat_penalty = 1.0f;
  p.frequency_penalty = 0.1f;  // 4.9 − 2·0.1 < 4.8
  Sampler f(p);
  l = ramp(50);
  EXPECT_EQ(f.sample(l, {49, 49}), 48);
}

namespace {

struct TinyModel {
  gguf::ModelFiles files;
  CpuBackend backend{2};
  Tokenizer tokenizer;
  Transformer transformer;
  explicit TinyModel(const std::string& name)
      : files(gguf::ModelFiles::open(path(name))),
        tokenizer(Vocab::from_gguf(files.metadata())),
        transformer(files, backend, 128) {}
  static std::string path(const std::string& name) {
    const char* v = std::getenv("EMBER_TESTDATA");
    return ((v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA)) / "synthetic" / name)
        .string();
  }
};

}  // namespace

TEST(Generate, StopStringsCutTheTextAndNeverStream) {
  TinyModel m("tiny-llama-q8_0.gguf");
  GenerateRequest request;
  request.prompt = {1, 334, 973, 157, 407};
  request.sampling.temperature = 0;
  request.max_tokens = 24;
  GenerateResult full = generate(m.transformer, m.tokenizer, request);
  ASSERT_EQ(full.finish_reason, "length");
  ASSERT_EQ(full.completion_tokens, 24);
  ASSERT_GT(full.text.size(), 12u);

  const std::string stop = full.text.substr(full.text.size() / 2, 4);
  request.stop = {stop};
  std::string streamed;
  GenerateResult cut = generate(m.transformer, m.tokenizer, request, [&](const std::string& piece) {
    streamed += piece;
    return true;
  });
  EXPECT_EQ(cut.finish_reason, "stop");
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(streamed, cut.text);
  EXPECT_LT(cut.completion_tokens, full.completion_tokens);
}

TEST(Generate, StreamedTextEqualsTheResultAndTheLimitHolds) {
  TinyModel m("tiny-qwen2-q8_0.gguf");
  GenerateRequest request;
  request.prompt = {1, 334, 973};
  request.sampling.temperature = 0.9f;
  request.sampling.seed = 7;
  request.max_tokens = 10;
  std::string streamed;
  GenerateResult r = generate(m.transformer, m.tokenizer, request, [&](const std::string& piece) {
    streamed += piece;
    return true;
  });
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.completion_tokens, 10);
  EXPECT_EQ(r.finish_reason, "length");
  GenerateResult again = generate(m.transformer, m.tokenizer, request);
  EXPECT_EQ(again.tokens, r.tokens);  // same seed, same output
}
