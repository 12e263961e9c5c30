// Sampling and the generation loop: greedy, seeded reproducibility, the filters, penalties,
// stop strings (text cut before them, never streamed) and the token limit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <random>
#include <set>

#include "gguf/model_files.h"
#include "model/backends/cpu_backend.h"
#include "model/backends/profiling_backend.h"
#include "model/draft_model.h"
#include "model/generate.h"
#include "model/sampler.h"
#include "model/speculative.h"

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

TEST(Sampler, TopIdsAreTheLargestLogitsInOrderWithTiesByLowerId) {
  // Against a full sort, on sizes around the 16-logit blocks, with many equal logits and -inf
  // (what a grammar masks), for k from 1 to all of them.
  std::mt19937 rng(9);
  for (size_t n : {1, 15, 16, 17, 100, 1000, 49157}) {
    std::vector<float> logits(n);
    for (float& l : logits)
      l = rng() % 7 == 0 ? -INFINITY : static_cast<float>(static_cast<int>(rng() % 50)) / 4;
    std::vector<TokenId> all(n);
    std::iota(all.begin(), all.end(), 0);
    std::stable_sort(all.begin(), all.end(),
                     [&](TokenId a, TokenId b) { return logits[a] > logits[b]; });
    for (size_t k : {size_t(1), size_t(5), size_t(40), n / 4 + 1, n}) {
      SCOPED_TRACE(testing::Message() << "n " << n << " k " << k);
      const std::vector<TokenId> expected(all.begin(), all.begin() + std::min(k, n));
      EXPECT_EQ(top_ids(logits, k), expected);
    }
  }
}

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

// Speculative decoding (speculative.h): the output never changes, whatever the guesses.

TEST(Speculative, LookupDraftTakesTheMostRecentLongestMatch) {
  //                         0  1  2  3  4  5  6  7  8  9
  std::vector<TokenId> ctx = {5, 6, 7, 8, 9, 5, 6, 1, 2, 5, 6};
  // "5 6" last occurs at 5..6 (followed by 1 2 5 6) before the end.
  EXPECT_EQ(lookup_draft(ctx, 3), (std::vector<TokenId>{1, 2, 5}));
  EXPECT_EQ(lookup_draft(ctx, 10), (std::vector<TokenId>{1, 2, 5, 6}));  // up to the end
  // A longer match wins over a more recent shorter one: "9 5 6"? not at the end; "7 5 6" no.
  std::vector<TokenId> ctx2 = {1, 2, 3, 4, 9, 3, 4, 7, 1, 2, 3, 4};
  EXPECT_EQ(lookup_draft(ctx2, 2), (std::vector<TokenId>{9, 3}));  // "1 2 3 4" → 9 3
  EXPECT_TRUE(lookup_draft({1, 2, 3}, 4).empty());                 // nothing repeats
  EXPECT_TRUE(lookup_draft({}, 4).empty());
  EXPECT_TRUE(lookup_draft(ctx, 0).empty());
}

namespace {

// Generation with and without guesses must agree token for token (and in text and reason).
void expect_same(const GenerateResult& plain, const GenerateResult& spec) {
  EXPECT_EQ(spec.tokens, plain.tokens);
  EXPECT_EQ(spec.text, plain.text);
  EXPECT_EQ(spec.finish_reason, plain.finish_reason);
  EXPECT_EQ(spec.completion_tokens, plain.completion_tokens);
}

}  // namespace

TEST(Speculative, EverySyntheticModelGivesTheSameOutputGreedyAndSampled) {
  const char* v = std::getenv("EMBER_TESTDATA");
  const fs::path dir = (v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA)) / "synthetic";
  int models = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".gguf" || name.find("-of-") != std::string::npos) continue;
    SCOPED_TRACE(name);
    std::unique_ptr<TinyModel> m;
    try {
      m = std::make_unique<TinyModel>(name);
    } catch (const std::exception&) {
      continue;  // not a model this test can run (test_logits covers why)
    }
    ++models;
    GenerateRequest request;
    // A prompt that repeats itself, so prompt lookup has something to guess from.
    request.prompt = {1, 334, 973, 157, 407, 334, 973, 157, 407, 334, 973};
    request.max_tokens = 40;
    for (float temperature : {0.0f, 0.9f}) {
      request.sampling.temperature = temperature;
      request.sampling.seed = 11;
      request.speculative = 0;
      const GenerateResult plain = generate(m->transformer, m->tokenizer, request);
      request.speculative = 6;
      const GenerateResult spec = generate(m->transformer, m->tokenizer, request);
      expect_same(plain, spec);
      EXPECT_LE(spec.forward_passes + spec.accepted_tokens, plain.completion_tokens);
    }
  }
  EXPECT_GE(models, 5);
}

TEST(Speculative, WrongGuessesAreNeverTaken) {
  // Guesses that are random tokens: any slipping through would change the output.
  TinyModel m("tiny-qwen3-q4_k_m.gguf");
  GenerateRequest request;
  request.prompt = {1, 334, 973, 157, 407};
  request.max_tokens = 48;
  request.sampling.temperature = 0.8f;
  request.sampling.seed = 3;
  const GenerateResult plain = generate(m.transformer, m.tokenizer, request);
  std::mt19937 rng(5);
  request.speculative = 8;
  request.drafter = [&](const std::vector<TokenId>&, int n) {
    std::vector<TokenId> out(static_cast<size_t>(n));
    for (TokenId& t : out) t = static_cast<TokenId>(rng() % m.transformer.n_vocab());
    return out;
  };
  const GenerateResult spec = generate(m.transformer, m.tokenizer, request);
  expect_same(plain, spec);
  EXPECT_GE(spec.draft_tokens, 15);  // fewer as they keep failing (Drafter)
  EXPECT_LT(spec.accepted_tokens, spec.draft_tokens / 4);
}

TEST(Speculative, RightGuessesSaveForwardPasses) {
  // An oracle that knows the output: every guess is taken, and 48 tokens take a few passes.
  TinyModel m("tiny-qwen2-q8_0.gguf");
  GenerateRequest request;
  request.prompt = {1, 334, 973};
  request.max_tokens = 48;
  request.sampling.temperature = 0;
  const GenerateResult plain = generate(m.transformer, m.tokenizer, request);
  ASSERT_EQ(plain.completion_tokens, 48);
  request.speculative = 8;
  request.drafter = [&](const std::vector<TokenId>& context, int n) {
    const size_t done = context.size() - request.prompt.size();
    std::vector<TokenId> out;
    for (size_t i = done; i < plain.tokens.size() && out.size() < size_t(n); ++i)
      out.push_back(plain.tokens[i]);
    return out;
  };
  const GenerateResult spec = generate(m.transformer, m.tokenizer, request);
  expect_same(plain, spec);
  EXPECT_EQ(spec.accepted_tokens, spec.draft_tokens);
  EXPECT_LE(spec.forward_passes, 48 / 9 + 1);
  EXPECT_EQ(plain.forward_passes, 47);
}

// Speculative decoding with a draft model (draft_model.h): the draft runs on the target's
// threads with its own cache.
struct DraftOf {
  gguf::ModelFiles files;
  Vocab vocab;
  CpuBackend backend;
  Transformer transformer;
  DraftModel draft;
  DraftOf(const std::string& name, TinyModel& target, int n_ctx = 128, int max_read = 0)
      : files(gguf::ModelFiles::open(TinyModel::path(name))),
        vocab(Vocab::from_gguf(files.metadata())),
        backend(target.backend.shared_pool()),
        transformer(files, backend, n_ctx),
        draft(transformer, vocab, 0, target.transformer.n_vocab(), max_read) {
    check_draft_vocabulary(target.tokenizer.vocab(), vocab);
  }
};

TEST(DraftModel, EveryQuantisationDraftsForItsF16ModelWithTheSameOutput) {
  // Each family's F16 model as the target, each other quantisation of it as the draft: they
  // agree often (guesses taken) but not always (guesses rejected), and the output never changes.
  const char* v = std::getenv("EMBER_TESTDATA");
  const fs::path dir = (v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA)) / "synthetic";
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".gguf") names.insert(entry.path().filename().string());
  int pairs = 0, drafted = 0, taken = 0;
  for (const std::string& target_name : names) {
    const size_t dash = target_name.rfind('-');
    if (target_name.substr(dash) != "-f16.gguf") continue;
    const std::string family = target_name.substr(0, dash + 1);
    TinyModel target(target_name);
    GenerateRequest request;
    request.prompt = {1, 334, 973, 157, 407};
    request.max_tokens = 32;
    for (const std::string& draft_name : names) {
      if (draft_name == target_name || draft_name.rfind(family, 0) != 0) continue;
      SCOPED_TRACE(target_name + " drafted by " + draft_name);
      DraftOf draft(draft_name, target);
      ++pairs;
      for (float temperature : {0.0f, 0.9f}) {
        request.sampling.temperature = temperature;
        request.sampling.seed = 7;
        request.speculative = 0;
        request.drafter = {};
        const GenerateResult plain = generate(target.transformer, target.tokenizer, request);
        request.speculative = 6;
        request.drafter = draft.draft.fn();
        const GenerateResult spec = generate(target.transformer, target.tokenizer, request);
        expect_same(plain, spec);
        EXPECT_GT(spec.draft_tokens, 0);
        drafted += spec.draft_tokens;
        taken += spec.accepted_tokens;
      }
    }
  }
  EXPECT_GE(pairs, 20);
  EXPECT_GT(taken, drafted / 4);        // the drafts are good guessers...
  EXPECT_LT(taken, drafted * 19 / 20);  // ...but not perfect ones: rejections are exercised
}

TEST(DraftModel, ReReadsOnlyWhatChangedAndGuessesAsAFreshOne) {
  TinyModel target("tiny-qwen3-f16.gguf");
  DraftOf draft("tiny-qwen3-q8_0.gguf", target);
  const std::vector<TokenId> a = {1, 334, 973, 157, 407, 12, 99};
  std::vector<TokenId> b = {1, 334, 973, 157, 88};  // leaves `a` after four tokens
  EXPECT_EQ(draft.draft.guess(a, 5).size(), 5u);
  EXPECT_EQ(draft.draft.tokens_read(), 7u + 4u);  // the context, then 4 guesses (not the last)
  const std::vector<TokenId> resumed = draft.draft.guess(b, 5);
  EXPECT_EQ(draft.draft.tokens_read(), 11u + 1u + 4u);  // only b's fifth token was new
  DraftOf fresh("tiny-qwen3-q8_0.gguf", target);
  EXPECT_EQ(resumed, fresh.draft.guess(b, 5));
  EXPECT_EQ(resumed.size(), 5u);
  EXPECT_TRUE(draft.draft.guess(b, 0).empty());
  // No room left in the draft's context (128 positions): no guesses, no error.
  EXPECT_TRUE(draft.draft.guess(std::vector<TokenId>(128, 334), 4).empty());
  // A token only the target has (an id past the draft's vocabulary): no guesses, no error.
  EXPECT_TRUE(draft.draft.guess({1, 334, draft.transformer.n_vocab() + 5, 7}, 4).empty());
}

TEST(DraftModel, LongContextsInChunksAndCaughtUpOverCalls) {
  // 300 tokens: read in one call (two forward batches), as prefixes call by call, and at most
  // 64 per call (the server's per-step budget): the same guesses every way.
  TinyModel target("tiny-llama-f16.gguf");
  std::vector<TokenId> context(300);
  for (size_t i = 0; i < context.size(); ++i) context[i] = static_cast<TokenId>(1 + i * 37 % 900);
  DraftOf whole("tiny-llama-q8_0.gguf", target, 320);
  const std::vector<TokenId> expected = whole.draft.guess(context, 6);
  ASSERT_EQ(expected.size(), 6u);
  DraftOf prefixes("tiny-llama-q8_0.gguf", target, 320);
  for (size_t n : {100, 290}) (void)prefixes.draft.guess({context.begin(), context.begin() + n}, 6);
  EXPECT_EQ(prefixes.draft.guess(context, 6), expected);
  DraftOf capped("tiny-llama-q8_0.gguf", target, 320, 64);
  for (int call = 0; call < 4; ++call) EXPECT_TRUE(capped.draft.guess(context, 6).empty());
  EXPECT_EQ(capped.draft.tokens_read(), 256u);
  EXPECT_EQ(capped.draft.guess(context, 6), expected);
}

TEST(DraftModel, AFailingDraftStopsGuessingAndChangesNothing) {
  TinyModel m("tiny-llama-q8_0.gguf");
  GenerateRequest request;
  request.prompt = {1, 334, 973, 157, 407};
  request.max_tokens = 24;
  request.sampling.temperature = 0;
  const GenerateResult plain = generate(m.transformer, m.tokenizer, request);
  request.speculative = 4;
  int calls = 0;
  request.drafter = [&](const std::vector<TokenId>&, int) -> std::vector<TokenId> {
    ++calls;
    throw std::runtime_error("out of device memory");
  };
  const GenerateResult spec = generate(m.transformer, m.tokenizer, request);
  expect_same(plain, spec);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(spec.draft_error, "out of device memory");
}

TEST(DraftModel, AnotherVocabularyIsAClearError) {
  TinyModel target("tiny-llama-q8_0.gguf");
  const Vocab& vocab = target.tokenizer.vocab();
  EXPECT_NO_THROW(check_draft_vocabulary(vocab, vocab));
  auto message = [&](const Vocab& other) {
    try {
      check_draft_vocabulary(vocab, other);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Vocab other = vocab;
  other.pieces[300] = "something else";
  EXPECT_NE(message(other).find("token 300 is"), std::string::npos) << message(other);
  other = vocab;
  other.eos = vocab.eos + 1;
  EXPECT_NE(message(other).find("begin or end tokens"), std::string::npos) << message(other);
  other = vocab;
  other.pieces.resize(vocab.size() - 129);
  EXPECT_NE(message(other).find("tokens"), std::string::npos) << message(other);
  other.pieces.resize(vocab.size() - 100);  // padding a family's sizes differ by is allowed
  for (size_t i = 0; i < other.pieces.size(); ++i) other.pieces[i] = vocab.pieces[i];
  EXPECT_NO_THROW(check_draft_vocabulary(vocab, other));
}

TEST(CpuBackend, InterleavedWeightsGiveTheSameLogits) {
  // The CPU backend's interleaved copies (kernels/cpu/kernels.h) against the mapped layout: the
  // same logits bit for bit, for a prompt (packed panels) and token by token (group tiles), on
  // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q4_K/Q6_K models, one with its output tied to the embedding
  // table (qwen2), one a mixture of experts (experts stay as mapped).
  for (const char* name : {"tiny-llama-q4_0.gguf", "tiny-llama-q4_1.gguf", "tiny-llama-q5_0.gguf",
                           "tiny-llama-q5_1.gguf", "tiny-llama-q8_0.gguf", "tiny-llama-q4_k_s.gguf",
                           "tiny-qwen2-q8_0.gguf", "tiny-qwen3moe-q8_0.gguf",
                           "tiny-gemma3-q8_0.gguf", "tiny-gemma3-q4_k_m.gguf"}) {
    SCOPED_TRACE(name);
    TinyModel m(name);
    CpuBackend plain_backend(m.backend.shared_pool());
    plain_backend.set_interleave(false);
    Transformer plain(m.files, plain_backend, 128);
    const std::vector<int32_t> prompt = {1, 334, 973, 157, 407, 12, 99, 5, 61, 700, 3};
    m.transformer.reset();
    EXPECT_EQ(m.transformer.forward(prompt, true), plain.forward(prompt, true));
    for (int32_t token : {42, 17, 256})
      EXPECT_EQ(m.transformer.forward({token}, false), plain.forward({token}, false));
  }
}

TEST(ProfilingBackend, SameLogitsAndEveryProductCounted) {
  TinyModel m("tiny-llama-q8_0.gguf");
  const std::vector<int32_t> prompt = {1, 334, 973, 157};
  m.transformer.reset();
  const std::vector<float> plain = m.transformer.forward(prompt, true);
  ProfilingBackend profiler(m.backend);
  Transformer profiled(m.files, profiler, 128);
  EXPECT_EQ(profiled.forward(prompt, true), plain);  // the same computation, only timed
  const auto& ops = profiler.ops();
  const int n_layer = profiled.hparams().n_layer;
  // q, k and v share their input: one product of the three (Backend::matmul_shared).
  const std::string qkv = "matmul attn_q+attn_k+attn_v";
  ASSERT_TRUE(ops.count(qkv) && ops.count("attention") && ops.count("rms_norm"));
  EXPECT_EQ(ops.at(qkv).calls, uint64_t(n_layer));
  EXPECT_EQ(ops.count("matmul attn_q"), 0u);
  double qkv_bytes = 0;
  for (const char* name : {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"}) {
    const gguf::TensorInfo* t = m.files.find_tensor(name);
    ASSERT_NE(t, nullptr);
    qkv_bytes += double(t->bytes);
  }
  EXPECT_DOUBLE_EQ(ops.at(qkv).bytes, qkv_bytes * n_layer);
  // Attention reads positions 0..p of K and V for each token p: 1+2+3+4 positions.
  const auto& hp = profiled.hparams();
  EXPECT_DOUBLE_EQ(ops.at("attention").bytes, 10.0 * 2 * hp.n_head_kv * hp.head_dim * 2 * n_layer);
  for (const auto& [name, op] : ops) EXPECT_GE(op.seconds, 0) << name;
}
