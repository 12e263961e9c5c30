// Structured output: the grammar recognizer on JSON and on compiled JSON Schemas, the token mask
// against a brute-force check over whole vocabularies, and constrained generation on a synthetic
// model always producing JSON that parses.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "gguf/model_files.h"
#include "model/backends/cpu_backend.h"
#include "model/generate.h"
#include "model/grammar/json_schema.h"
#include "model/grammar/token_trie.h"

using namespace ember;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path testdata() {
  const char* v = std::getenv("EMBER_TESTDATA");
  return v && *v ? fs::path(v) : fs::path(EMBER_DEFAULT_TESTDATA);
}

// Whether the whole text is a sentence of the grammar.
bool matches(const grammar::Grammar& g, const std::string& text) {
  grammar::Matcher m(g);
  for (char c : text)
    if (!m.advance(static_cast<uint8_t>(c))) return false;
  return m.accepting();
}

grammar::Grammar schema(const char* text) {
  return grammar::grammar_from_schema(json::parse(text));
}

}  // namespace

TEST(Grammar, AnyJsonObject) {
  const grammar::Grammar g = grammar::json_object_grammar();
  for (const char* ok : {"{}", " {}", R"({"a": [1, -2.5e3, "x\"y\u00e9", true, null, {"b": {}}]})",
                         "{\n\"k\": 0}", R"({"a":1,"b":[]})", "{\"\xc3\xa9\": 1}"})
    EXPECT_TRUE(matches(g, ok)) << ok;
  for (const char* bad : {"[1]", R"({"a" 1})", "{,}", R"({"a": 01})", "{\"a\": tru}", "{}}", "{  }",
                          R"({"a": "\q"})", "{\"a\": \"\x01\"}"})
    EXPECT_FALSE(matches(g, bad)) << bad;
}

TEST(Grammar, ObjectsFollowPropertiesAndRequired) {
  const grammar::Grammar g = schema(R"({"type": "object",
      "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                     "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
      "required": ["name", "age"]})");
  // Properties come in the order the schema lists them (nlohmann::json: alphabetical).
  EXPECT_TRUE(matches(g, R"({"age": 3, "name": "x"})"));
  EXPECT_TRUE(matches(g, R"({"age": 3, "name": "x", "tags": ["a", "b"]})"));
  EXPECT_FALSE(matches(g, R"({"age": 3})"));                 // name is required
  EXPECT_FALSE(matches(g, R"({"age": 3.5, "name": "x"})"));  // an integer
  EXPECT_FALSE(matches(g, R"({"age": 3, "name": "x", "tags": ["a", "b", "c"]})"));  // maxItems
  EXPECT_FALSE(matches(g, R"({"age": 3, "name": "x", "other": 1})"));  // no other properties
}

TEST(Grammar, EnumsConstsUnionsRefsAndFormats) {
  EXPECT_TRUE(matches(schema(R"({"enum": ["red", 2, null]})"), "2"));
  EXPECT_FALSE(matches(schema(R"({"enum": ["red", 2, null]})"), "\"blue\""));
  EXPECT_TRUE(matches(schema(R"({"const": {"a": 1}})"), R"({"a":1})"));
  const grammar::Grammar optional = schema(R"({"anyOf": [{"type": "string"}, {"type": "null"}]})");
  EXPECT_TRUE(matches(optional, "null"));
  EXPECT_TRUE(matches(optional, "\"x\""));
  EXPECT_FALSE(matches(optional, "1"));
  EXPECT_TRUE(matches(schema(R"({"type": ["integer", "null"]})"), "null"));
  // A recursive definition through $ref.
  const grammar::Grammar tree = schema(R"({"$ref": "#/$defs/node", "$defs": {"node": {
      "type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
      "v": {"type": "number"}}, "required": ["children", "v"]}}})");
  EXPECT_TRUE(matches(tree, R"({"children": [{"children": [], "v": 1}], "v": 2.5})"));
  EXPECT_FALSE(matches(tree, R"({"children": [{"v": 1}], "v": 2})"));
  EXPECT_TRUE(matches(schema(R"({"type": "string", "format": "date"})"), "\"2026-11-29\""));
  EXPECT_FALSE(matches(schema(R"({"type": "string", "format": "date"})"), "\"29/11/2026\""));
  EXPECT_TRUE(matches(schema(R"({"type": "string", "format": "uuid"})"),
                      "\"123e4567-e89b-12d3-a456-426614174000\""));
  EXPECT_TRUE(matches(schema(R"({"type": "string", "format": "date-time"})"),
                      "\"2026-11-29T19:00:00.5Z\""));
  EXPECT_TRUE(matches(schema(R"({"type": "string", "format": "email"})"), "\"a.b@example.org\""));
  EXPECT_FALSE(matches(schema(R"({"type": "string", "format": "email"})"), "\"a.b@example\""));
  const grammar::Grammar sized = schema(R"({"type": "string", "minLength": 2, "maxLength": 3})");
  EXPECT_FALSE(matches(sized, "\"a\""));
  EXPECT_TRUE(matches(sized, "\"ab\""));
  EXPECT_FALSE(matches(sized, "\"abcd\""));
  const grammar::Grammar counted =
      schema(R"({"type": "array", "items": {"type": "integer"}, "minItems": 2})");
  EXPECT_FALSE(matches(counted, "[1]"));
  EXPECT_TRUE(matches(counted, "[1, 2, 3]"));
}

TEST(Grammar, UnsupportedKeywordsAreNamed) {
  for (const auto& [text, keyword] : std::vector<std::pair<const char*, const char*>>{
           {R"({"type": "integer", "minimum": 0})", "minimum"},
           {R"({"type": "string", "pattern": "^a+$"})", "pattern"},
           {R"({"allOf": [{"type": "string"}]})", "allOf"},
           {R"({"type": "string", "format": "ipv4"})", "format"},
           {R"({"$ref": "#/$defs/missing"})", "$ref"},
           {R"({"type": "thing"})", "type"}}) {
    try {
      schema(text);
      ADD_FAILURE() << text << " compiled";
    } catch (const grammar::SchemaError& e) {
      EXPECT_EQ(e.keyword(), keyword) << text << ": " << e.what();
    }
  }
}

// The mask equals trying every token's bytes one by one, at several points of an output (inside
// strings, escapes and between values), on real SentencePiece (32k) and byte-level BPE (50k)
// vocabularies.
class TokenMask : public ::testing::TestWithParam<const char*> {};

TEST_P(TokenMask, EqualsBruteForce) {
  gguf::ModelFiles files = gguf::ModelFiles::open((testdata() / "tokenizer" / GetParam()).string());
  text::Tokenizer tokenizer(text::Vocab::from_gguf(files.metadata()));
  grammar::TokenTrie trie(tokenizer);
  const grammar::Grammar g = schema(R"({"type": "object", "properties": {
      "name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["n", "name"]})");
  const std::string output = R"({"n": 12, "name": "ab\"c d\u00e9 \\"})";
  grammar::Matcher m(g);
  std::vector<char> mask;
  for (size_t at = 0; at <= output.size(); ++at) {
    grammar::Matcher here(g);
    for (size_t i = 0; i < at; ++i) ASSERT_TRUE(here.advance(static_cast<uint8_t>(output[i])));
    trie.allowed(here, mask);
    size_t allowed = 0;
    for (size_t id = 0; id < tokenizer.vocab().size(); ++id) {
      const std::string bytes = tokenizer.piece(static_cast<text::TokenId>(id));
      grammar::Matcher probe = here;
      bool ok = !bytes.empty();
      for (char c : bytes) ok = ok && probe.advance(static_cast<uint8_t>(c));
      ASSERT_EQ(bool(mask[id]), ok)
          << "after " << at << " bytes, token " << id << " '" << bytes << "'";
      allowed += ok;
    }
    if (at < output.size())  // after the whole value only the end of text may follow
      EXPECT_GT(allowed, 0u) << "after " << at << " bytes";
    else
      EXPECT_EQ(allowed, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, TokenMask,
                         ::testing::Values("ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"),
                         [](const auto& info) {
                           return std::string(info.param).find("spm") != std::string::npos
                                      ? "sentencepiece"
                                      : "bpe";
                         });

// Constrained generation on a random-weight model (which would never write JSON by itself)
// gives JSON that parses and validates, at any temperature.
TEST(Grammar, ConstrainedGenerationAlwaysParses) {
  gguf::ModelFiles files =
      gguf::ModelFiles::open((testdata() / "synthetic" / "tiny-llama-q8_0.gguf").string());
  text::Tokenizer tokenizer(text::Vocab::from_gguf(files.metadata()));
  auto trie = std::make_shared<grammar::TokenTrie>(tokenizer);
  model::CpuBackend backend(2);
  model::Transformer transformer(files, backend, 512);
  auto g = std::make_shared<grammar::Grammar>(schema(R"({"type": "object", "properties": {
      "ok": {"type": "boolean"}, "level": {"enum": ["low", "high"]}}, "required": ["level", "ok"]})"));
  for (uint64_t seed : {1, 2, 3}) {
    model::GenerateRequest request;
    request.prompt = {1, 450, 318};
    request.sampling.temperature = 1.0f;
    request.sampling.seed = seed;
    request.max_tokens = 200;
    request.grammar = g;
    request.trie = trie;
    transformer.reset();
    model::GenerateResult r = model::generate(transformer, tokenizer, request);
    EXPECT_EQ(r.finish_reason, "stop") << r.text;
    const json value = json::parse(r.text);
    EXPECT_TRUE(value["ok"].is_boolean()) << r.text;
    EXPECT_TRUE(value["level"] == "low" || value["level"] == "high") << r.text;
  }
}
