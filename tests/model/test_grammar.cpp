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
#include "model/grammar/gbnf.h"
#include "model/grammar/json_schema.h"
#include "model/grammar/token_trie.h"

using namespace ember;
using json = nlohmann::ordered_json;
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
  // Properties come in the order the schema lists them.
  EXPECT_TRUE(matches(g, R"({"name": "x", "age": 3})"));
  EXPECT_FALSE(matches(g, R"({"age": 3, "name": "x"})"));
  EXPECT_TRUE(matches(g, R"({"name": "x", "age": 3, "tags": ["a", "b"]})"));
  EXPECT_FALSE(matches(g, R"({"age": 3})"));                 // name is required
  EXPECT_FALSE(matches(g, R"({"name": "x", "age": 3.5})"));  // an integer
  EXPECT_FALSE(matches(g, R"({"name": "x", "age": 3, "tags": ["a", "b", "c"]})"));  // maxItems
  EXPECT_FALSE(matches(g, R"({"name": "x", "age": 3, "other": 1})"));  // no other properties
  // At most 16 digits in a number's integer part (a small model cannot loop on them).
  EXPECT_TRUE(matches(g, R"({"name": "x", "age": 1234567890123456})"));
  EXPECT_FALSE(matches(g, R"({"name": "x", "age": 12345678901234567})"));
}

grammar::Grammar gbnf(const char* text) {
  return grammar::grammar_from_gbnf(text);
}

TEST(Gbnf, ParsesLlamaCppNotation) {
  // The shape of llama.cpp's grammars/arithmetic.gbnf and json.gbnf, comments and all.
  const grammar::Grammar arithmetic = gbnf(R"g(# arithmetic
root  ::= (expr "=" ws term "\n")+
expr  ::= term ([-+*/] term)*
term  ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z] [a-z0-9_]* ws
num   ::= [0-9]+ ws
ws    ::= [ \t\n]*
)g");
  EXPECT_TRUE(matches(arithmetic, "1+2=3\n"));
  EXPECT_TRUE(matches(arithmetic, "(a_1 *2)=x\nb=c\n"));
  EXPECT_FALSE(matches(arithmetic, "1+=3\n"));
  EXPECT_FALSE(matches(arithmetic, "A=1\n"));

  const grammar::Grammar json_like = gbnf(R"g(
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws
array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws
string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4})
  )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
)g");
  EXPECT_TRUE(matches(json_like, R"({"a": [1, "\u00e9\n", true, {"b": null}]})"));
  EXPECT_TRUE(matches(json_like, "{\"\xc3\xa9\xe2\x82\xac\": -0.5}"));
  EXPECT_FALSE(matches(json_like, R"({"a" 1})"));
  EXPECT_FALSE(matches(json_like, R"({"a": "\u00g9"})"));
}

TEST(Gbnf, RepetitionsClassesAndUnicode) {
  const grammar::Grammar g = gbnf(R"(root ::= "ab"{2} [x-z]{1,3} "!"?)");
  EXPECT_TRUE(matches(g, "ababx"));
  EXPECT_TRUE(matches(g, "ababzzz!"));
  EXPECT_FALSE(matches(g, "abx"));
  EXPECT_FALSE(matches(g, "ababxxxx"));
  const grammar::Grammar any = gbnf(R"(root ::= "a" .*)");
  EXPECT_TRUE(matches(any, "a \xe2\x82\xac\n\xf0\x9f\x98\x80 at all"));
  EXPECT_FALSE(matches(any, "a\xff"));  // not UTF-8
  // Classes of code points beyond ASCII, negated ones too, matched as UTF-8.
  const grammar::Grammar cyrillic = gbnf("root ::= [\xd0\xb0-\xd1\x8f]+ [^a-z\\u0430-\\u044f]");
  EXPECT_TRUE(matches(cyrillic, "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82!"));  // привет!
  EXPECT_TRUE(matches(cyrillic, "\xd1\x8f\xf0\x9f\x98\x80"));                           // я😀
  EXPECT_FALSE(matches(cyrillic, "\xd1\x8f\xd0\xb0"));  // яа: the last is excluded
  EXPECT_FALSE(matches(cyrillic, "abc"));
  const grammar::Grammar escapes = gbnf(R"(root ::= "\x41\u00e9\U0001F600\t" [\]\-]+)");
  EXPECT_TRUE(matches(escapes, "A\xc3\xa9\xf0\x9f\x98\x80\t]-]"));
}

TEST(Gbnf, BadGrammarsSayWhereAndWhy) {
  auto error = [](const char* text) -> std::string {
    try {
      grammar::grammar_from_gbnf(text);
    } catch (const grammar::GbnfError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error("root ::= \"a\"\nx ::= \"b\" )").find("line 2, column 11"), std::string::npos);
  EXPECT_NE(error("root ::= x").find("'x' is used but not defined"), std::string::npos);
  EXPECT_NE(error("item ::= \"a\"").find("no 'root'"), std::string::npos);
  EXPECT_NE(error("root ::= \"a\"\nroot ::= \"b\"").find("defined twice"), std::string::npos);
  EXPECT_NE(error("root ::= root \"a\" | \"b\"").find("left-recursive"), std::string::npos);
  EXPECT_NE(error("root ::= x? root \"a\"\nx ::= \"\"").find("left-recursive"), std::string::npos);
  EXPECT_NE(error("root ::= \"a\"{2000}").find("above 1000"), std::string::npos);
  EXPECT_NE(error("root ::= [z-a]").find("backwards"), std::string::npos);
  EXPECT_NE(error("root ::= <[1000]>").find("token references"), std::string::npos);
  EXPECT_NE(error("root ::= (\"a\"").find("expected ')'"), std::string::npos);
  EXPECT_NE(error("root ::= \"\\q\"").find("unknown escape"), std::string::npos);
  EXPECT_NE(error("root ::= \"\\uD800\"").find("surrogate"), std::string::npos);
  EXPECT_NE(error("root ::= \"\xff\"").find("invalid UTF-8"), std::string::npos);
  // Deep nesting is an error, not a stack overflow.
  const std::string deep =
      "root ::= " + std::string(20000, '(') + "\"a\"" + std::string(20000, ')');
  EXPECT_NE(error(deep.c_str()).find("nest deeper than 256"), std::string::npos);
}

TEST(Gbnf, TooAmbiguousGrammarsAreRefusedQuickly) {
  const grammar::Grammar g = gbnf(R"(root ::= (("a"{0,30}){0,30}){0,30} "b")");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(
      {
        grammar::Matcher m(g);
        for (char c : std::string("aaaaab")) m.advance(static_cast<uint8_t>(c));
      },
      grammar::GrammarTooComplex);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(Gbnf, RecursionThatDeepensWithEveryByteIsRefused) {
  // Found by fuzz_gbnf (tests/fuzz/corpus_gbnf/deepening_recursion): `.root*` lets each byte go
  // one level deeper, so the stacks grew with the text and each byte cost more than the last
  // (1.7 s for these 81 bytes, minutes for longer ones) while the count of expansion steps
  // stayed inside the budget. Deep stacks now count for more of it.
  const grammar::Grammar g = gbnf("root ::= obj\nobj ::= \"{\" * .*  .root  * # c\n");
  static const char kText[] =
      "abab\x02"
      "\x00"
      "abr \x1a\x1a\x1a\x1a\" val)\x00"
      "\x00"
      "\x1e"
      "N\x00"
      "\x00"
      "\x02"
      ")?"
      "{\"a\":{\"b\":06}}\":12}}\"\"root ::= obj\nobj ::= \"{\"::= ( ";
  const std::string text(kText, sizeof(kText) - 1);
  EXPECT_THROW(
      {
        grammar::Matcher m(g);
        for (char c : text)
          if (!m.advance(static_cast<uint8_t>(c))) break;
      },
      grammar::GrammarTooComplex);
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

TEST(Grammar, PatternsMatchTheStringsText) {
  auto accepts = [](const char* pattern, const std::string& json_text) {
    json schema = {{"type", "string"}, {"pattern", pattern}};
    return matches(grammar::grammar_from_schema(schema), json_text);
  };
  // Anchored: the whole text.
  EXPECT_TRUE(accepts("^[A-Z]{2}-\\d{3,4}$", R"("AB-123")"));
  EXPECT_TRUE(accepts("^[A-Z]{2}-\\d{3,4}$", R"("AB-1234")"));
  EXPECT_FALSE(accepts("^[A-Z]{2}-\\d{3,4}$", R"("AB-12")"));
  EXPECT_FALSE(accepts("^[A-Z]{2}-\\d{3,4}$", R"("xAB-123")"));
  // Unanchored: anywhere, as JSON Schema says.
  EXPECT_TRUE(accepts("ab+c", R"("xx abbbc yy")"));
  EXPECT_FALSE(accepts("ab+c", R"("xx ac yy")"));
  EXPECT_TRUE(accepts("^(?:cat|dog)s?$", R"("dogs")"));
  EXPECT_FALSE(accepts("^(?:cat|dog)s?$", R"("cow")"));
  // Characters that JSON escapes: a quote, a backslash, a newline, a control character.
  EXPECT_TRUE(accepts("^a\"b\\\\c\\nd\\x01$", R"("a\"b\\c\nd\u0001")"));
  EXPECT_TRUE(accepts("^a\"b\\\\c\\nd\\x01$", R"("a\"b\\c\nd\u0001")"));
  EXPECT_FALSE(accepts("^\\n$", "\"\n\""));  // a raw newline is not JSON
  // Unicode: classes of code points, written as UTF-8; . is any but a line terminator.
  EXPECT_TRUE(accepts("^[\\u00e0-\\u00ff]+.$", "\"\xc3\xa9\xc3\xa0\xe2\x82\xac\""));
  EXPECT_FALSE(accepts("^.$", R"("\n")"));
  EXPECT_TRUE(accepts("^\\w+@\\w+\\.[a-z]{2,3}$", R"("me@example.org")"));
  // Repetitions of repetitions are one (else the recognizer would find exponentially many ways
  // to read the same text).
  EXPECT_TRUE(accepts("^x(a*)*+b?*$", R"("xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbb")"));
  EXPECT_FALSE(accepts("^x(a+)+$", R"("x")"));
  // A pattern with no type is a string's.
  EXPECT_TRUE(matches(grammar::grammar_from_schema(json{{"pattern", "^x$"}}), R"("x")"));
  for (const char* bad : {"(?=a)", "\\1", "a\\b", "a^b", "(a", "[a", "a{2,1}", "*a", "a{300}"}) {
    try {
      grammar::grammar_from_schema(json{{"type", "string"}, {"pattern", bad}});
      ADD_FAILURE() << bad << " compiled";
    } catch (const grammar::SchemaError& e) {
      EXPECT_EQ(e.keyword(), "pattern") << bad;
    }
  }
}

TEST(Grammar, UnsupportedKeywordsAreNamed) {
  for (const auto& [text, keyword] : std::vector<std::pair<const char*, const char*>>{
           {R"({"type": "integer", "minimum": 0})", "minimum"},
           {R"({"type": "string", "pattern": "a(?=b)c"})", "pattern"},
           {R"({"type": "string", "pattern": "^a$", "maxLength": 3})", "pattern"},
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
  const std::string output = R"({"name": "ab\"c d\u00e9 \\", "n": 12})";
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
