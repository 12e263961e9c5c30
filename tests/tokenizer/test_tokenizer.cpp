// Tokenizer behaviour beyond the shared vectors: special tokens, BOS/EOS, decoding, and the
// streaming decoder never emitting a broken UTF-8 character.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "gguf/model_files.h"
#include "model/text/tokenizer.h"
#include "model/text/utf8.h"

namespace fs = std::filesystem;
using ember::text::StreamDecoder;
using ember::text::TokenId;
using ember::text::Tokenizer;
using ember::text::Vocab;

namespace {

Tokenizer load(const std::string& name) {
  const char* v = std::getenv("EMBER_TESTDATA");
  fs::path dir = (v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA)) / "tokenizer";
  gguf::ModelFiles file = gguf::ModelFiles::open((dir / ("ggml-vocab-" + name + ".gguf")).string());
  return Tokenizer(Vocab::from_gguf(file.metadata()));
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = ember::text::utf8::char_length(s, i);
    if (n == 1 && static_cast<unsigned char>(s[i]) >= 0x80) return false;
    i += n;
  }
  return true;
}

const char* kSamples[] = {
    "Hello world",
    " this is 🦙.cpp",
    "naïve café 🦙🔥 こんにちは",
    "\n\n  tabs\tand spaces  ",
    "нещо на Български",
    "3333333 333.3",
};

}  // namespace

TEST(Tokenizer, DecodeInvertsEncode) {
  for (const char* vocab : {"llama-spm", "phi-3", "gpt-2", "falcon", "deepseek-llm"}) {
    Tokenizer t = load(vocab);
    for (const char* text : kSamples) {
      std::vector<TokenId> ids = t.encode(text, false, false);
      EXPECT_EQ(t.decode(ids), text) << vocab;
    }
  }
}

TEST(Tokenizer, BosAndEosFollowTheVocabulary) {
  Tokenizer spm = load("llama-spm");
  std::vector<TokenId> ids = spm.encode("Hello", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 1);  // add_bos_token = true
  EXPECT_NE(ids.back(), 2);   // add_eos_token = false
  EXPECT_EQ(spm.decode(ids), "Hello");
  Tokenizer gpt2 = load("gpt-2");
  EXPECT_EQ(gpt2.encode("Hello", true, false),
            gpt2.encode("Hello", false, false));  // no add_bos key
}

TEST(Tokenizer, ControlTokensOnlyWhenAsked) {
  Tokenizer spm = load("llama-spm");
  std::vector<TokenId> parsed = spm.encode("<s>Hi</s>", false, true);
  ASSERT_GE(parsed.size(), 3u);
  EXPECT_EQ(parsed.front(), 1);
  EXPECT_EQ(parsed.back(), 2);
  std::vector<TokenId> plain = spm.encode("<s>Hi</s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(spm.decode(plain), "<s>Hi</s>");
  // Control tokens print only when asked.
  EXPECT_EQ(spm.piece(1), "");
  EXPECT_EQ(spm.piece(1, true), "<s>");
}

TEST(Tokenizer, StreamingNeverSplitsACharacter) {
  for (const char* vocab : {"llama-spm", "gpt-2", "deepseek-llm"}) {
    Tokenizer t = load(vocab);
    for (const char* text : kSamples) {
      std::vector<TokenId> ids = t.encode(text, true, false);
      StreamDecoder stream(t);
      std::string joined;
      for (TokenId id : ids) {
        std::string chunk = stream.push(id);
        EXPECT_TRUE(valid_utf8(chunk)) << vocab << ": broken chunk for " << text;
        joined += chunk;
      }
      joined += stream.finish();
      EXPECT_EQ(joined, t.decode(ids)) << vocab;
    }
  }
}

TEST(Tokenizer, ByteFallbackPiecesAreRawBytes) {
  Tokenizer spm = load("llama-spm");
  std::vector<TokenId> ids = spm.encode("🦙", false, false);
  std::string bytes;
  for (TokenId id : ids) bytes += spm.piece(id);
  EXPECT_EQ(bytes, " 🦙");  // the SentencePiece space prefix, then the four bytes
  StreamDecoder stream(spm);
  std::string first = stream.push(ids[0]);
  EXPECT_EQ(first, "");
  for (size_t i = 1; i + 1 < ids.size(); ++i) EXPECT_EQ(stream.push(ids[i]), "") << "held back";
  EXPECT_EQ(stream.push(ids.back()), "🦙");
}

TEST(Tokenizer, UnknownPreTokenizerFallsBackToDefault) {
  bool known = true;
  ember::text::PreTokenizer pre("no-such-pre", &known);
  EXPECT_FALSE(known);
  auto pieces = pre.split("Hello, world 123");
  std::string joined;
  for (auto p : pieces) joined += p;
  EXPECT_EQ(joined, "Hello, world 123");
}

TEST(Tokenizer, BrokenUtf8IsTokenizedWithoutLoss) {
  // Every byte must have a normal token for this to hold. Falcon's vocabulary lacks some (ÿ, þ)
  // and DeepSeek's has them as user-defined tokens, printed as written: there, as in llama.cpp,
  // invalid bytes do not come back.
  const std::string broken = "ok \xff\xfe bad \xe2\x82 end \xc3";
  for (const char* vocab : {"llama-spm", "gpt-2"}) {
    Tokenizer t = load(vocab);
    std::vector<TokenId> ids = t.encode(broken, false, false);
    EXPECT_EQ(t.decode(ids), broken) << vocab;
  }
}
