// Tool-call parsers of every family and the reasoning split, on recorded-style answers fed whole,
// byte by byte and in every two-piece cut; forced-call grammars; tool prompts through real
// templates (../shared/testdata/templates).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/chat/chat_output.h"
#include "model/chat/chat_request.h"
#include "model/grammar/grammar.h"

namespace ember::chat {
namespace {

using json = nlohmann::ordered_json;

struct Parsed {
  std::string content, reasoning;
  std::vector<std::pair<std::string, std::string>> calls;  // name, arguments
  std::vector<std::string> ids;
  bool operator==(const Parsed& o) const {
    return content == o.content && reasoning == o.reasoning && calls == o.calls;
  }
};

std::ostream& operator<<(std::ostream& os, const Parsed& p) {
  os << "content=" << json(p.content).dump() << " reasoning=" << json(p.reasoning).dump();
  for (const auto& [n, a] : p.calls) os << " call " << n << " " << a;
  return os;
}

void take(Parsed& p, const std::vector<ChatDelta>& deltas) {
  for (const ChatDelta& d : deltas) {
    switch (d.kind) {
      case ChatDelta::kContent:
        p.content += d.text;
        break;
      case ChatDelta::kReasoning:
        p.reasoning += d.text;
        break;
      case ChatDelta::kToolCall:
        ASSERT_EQ(d.index, static_cast<int>(p.calls.size()));
        ASSERT_FALSE(d.name.empty());
        p.calls.emplace_back(d.name, d.text);
        p.ids.push_back(d.id);
        break;
      case ChatDelta::kToolArguments:
        ASSERT_LT(d.index, static_cast<int>(p.calls.size()));
        p.calls[d.index].second += d.text;
        break;
    }
  }
}

Parsed parse(const ChatOutputOptions& options, const std::vector<std::string>& pieces) {
  ChatOutputParser parser(options);
  Parsed p;
  for (const std::string& piece : pieces) take(p, parser.push(piece));
  take(p, parser.finish());
  return p;
}

// The answer whole, byte by byte, and cut in two at every position: the same result each time.
Parsed parse_every_way(const ChatOutputOptions& options, const std::string& text) {
  const Parsed whole = parse(options, {text});
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  EXPECT_EQ(parse(options, bytes), whole) << "byte by byte";
  for (size_t cut = 1; cut < text.size(); ++cut)
    EXPECT_EQ(parse(options, {text.substr(0, cut), text.substr(cut)}), whole) << "cut at " << cut;
  return whole;
}

ChatOutputOptions tools_of(ToolSyntax syntax) {
  ChatOutputOptions o;
  o.tools = true;
  o.syntax = syntax;
  return o;
}

using Calls = std::vector<std::pair<std::string, std::string>>;

TEST(ToolCalls, Hermes) {
  const std::string text =
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\", "
      "\"unit\": \"c\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": "
      "{\"tz\": \"CET\"}}\n</tool_call>";
  const Parsed p = parse_every_way(tools_of(ToolSyntax::kHermes), text);
  EXPECT_EQ(p.content, "Let me check.\n");
  EXPECT_EQ(p.calls, (Calls{{"get_weather", R"({"city": "Paris", "unit": "c"})"},
                            {"get_time", R"({"tz": "CET"})"}}));
  ASSERT_EQ(p.ids.size(), 2u);
  EXPECT_EQ(p.ids[0].rfind("call_", 0), 0u);
  EXPECT_NE(p.ids[0], p.ids[1]);
}

TEST(ToolCalls, HermesArgumentsStreamBeforeTheCallEnds) {
  ChatOutputParser parser(tools_of(ToolSyntax::kHermes));
  Parsed p;
  take(p, parser.push("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 2"));
  ASSERT_EQ(p.calls.size(), 1u);  // the name is out, and the arguments so far
  EXPECT_EQ(p.calls[0], std::make_pair(std::string("f"), std::string("{\"a\": [1, 2")));
  take(p, parser.push("]}}\n</tool_call>"));
  take(p, parser.finish());
  EXPECT_EQ(p.calls[0].second, "{\"a\": [1, 2]}");
}

TEST(ToolCalls, LongArgumentsStreamInLinearTime) {
  // 200 kB of arguments in 4-byte pieces: each piece is handed out without scanning the call
  // again (a rescan per piece would be 10^10 steps).
  std::string body;
  for (int i = 0; i < 20000; ++i) body += "word " + std::to_string(i % 10) + " ";
  const std::string text = "<tool_call>\n{\"name\": \"write\", \"arguments\": {\"text\": \"" +
                           body + "\", \"n\": [1, 2]}}\n</tool_call>";
  std::vector<std::string> pieces;
  for (size_t i = 0; i < text.size(); i += 4) pieces.push_back(text.substr(i, 4));
  const auto start = std::chrono::steady_clock::now();
  const Parsed p = parse(tools_of(ToolSyntax::kHermes), pieces);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].second, "{\"text\": \"" + body + "\", \"n\": [1, 2]}");
}

TEST(ToolCalls, Llama3) {
  const Parsed plain = parse_every_way(
      tools_of(ToolSyntax::kLlama3),
      "{\"name\": \"search\", \"parameters\": {\"query\": \"ember \\\"gguf\\\"\"}}");
  EXPECT_EQ(plain.calls, (Calls{{"search", R"({"query": "ember \"gguf\""})"}}));
  EXPECT_EQ(plain.content, "");
  const Parsed tagged = parse_every_way(tools_of(ToolSyntax::kLlama3),
                                        "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; "
                                        "{\"name\": \"b\", \"parameters\": {\"x\": 1}}");
  EXPECT_EQ(tagged.calls, (Calls{{"a", "{}"}, {"b", R"({"x": 1})"}}));
  // A JSON answer that is not a call stays content.
  const Parsed answer = parse_every_way(tools_of(ToolSyntax::kLlama3), "{\"answer\": 42}");
  EXPECT_EQ(answer.content, "{\"answer\": 42}");
  EXPECT_TRUE(answer.calls.empty());
}

TEST(ToolCalls, Mistral) {
  const Parsed p = parse_every_way(tools_of(ToolSyntax::kMistral),
                                   "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, "
                                   "\"b\": 2}, \"id\": \"abc123XYZ\"}, "
                                   "{\"name\": \"neg\", \"arguments\": {\"a\": -3.5e2}}]");
  EXPECT_EQ(p.calls, (Calls{{"add", R"({"a": 1, "b": 2})"}, {"neg", R"({"a": -3.5e2})"}}));
  ASSERT_EQ(p.ids.size(), 2u);
  // ember's ids, unique in the answer; nine characters, as Mistral's templates insist.
  EXPECT_EQ(p.ids[0].size(), 9u);
  EXPECT_NE(p.ids[0], p.ids[1]);
  const Parsed args = parse_every_way(
      tools_of(ToolSyntax::kMistralArgs),
      "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo\"}[TOOL_CALLS]get_time[CALL_ID]k2j4h5g6f"
      "[ARGS]{}");
  EXPECT_EQ(args.calls, (Calls{{"get_weather", R"({"city": "Oslo"})"}, {"get_time", "{}"}}));
}

TEST(ToolCalls, Phi4) {
  const Parsed p = parse_every_way(
      tools_of(ToolSyntax::kPhi4),
      "<|tool_call|>{\"name\": \"lookup\", \"arguments\": {\"id\": 7}}<|/tool_call|>"
      "<|tool_call|>[{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": "
      "\"{\\\"q\\\": 1}\"}]<|/tool_call|>");
  // A model that writes the arguments as a JSON string gets that string's content.
  EXPECT_EQ(p.calls, (Calls{{"lookup", R"({"id": 7})"}, {"a", "{}"}, {"b", R"({"q": 1})"}}));
}

TEST(ToolCalls, Generic) {
  const Parsed p = parse_every_way(
      tools_of(ToolSyntax::kGeneric),
      " {\"tool_calls\": [{\"name\": \"f\", \"arguments\": {\"s\": \"}]\"}}, {\"name\": \"g\", "
      "\"arguments\": {}}]}");
  EXPECT_EQ(p.calls, (Calls{{"f", R"({"s": "}]"})"}, {"g", "{}"}}));
  const Parsed text = parse_every_way(tools_of(ToolSyntax::kGeneric), "Paris is in France.");
  EXPECT_EQ(text.content, "Paris is in France.");
  EXPECT_TRUE(text.calls.empty());
}

TEST(ToolCalls, MalformedOrCutCallsAreContent) {
  for (const char* text : {"<tool_call>\n{\"name\": 5}</tool_call>", "<tool_call>\n{\"nam",
                           "<tool_call> not json </tool_call>"}) {
    const Parsed p = parse_every_way(tools_of(ToolSyntax::kHermes), text);
    EXPECT_TRUE(p.calls.empty()) << text;
    EXPECT_EQ(p.content, text);
  }
  // A marker-like text inside content is held only while it may be the marker.
  const Parsed p = parse_every_way(tools_of(ToolSyntax::kHermes), "a <tool b");
  EXPECT_EQ(p.content, "a <tool b");
}

TEST(ToolCalls, WhatIsNotACallStaysContent) {
  // A plain JSON answer is no Llama 3 call: a call names its parameters.
  Parsed p = parse_every_way(tools_of(ToolSyntax::kLlama3), R"({"name": "Alice", "age": 3})");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, R"({"name": "Alice", "age": 3})");
  // A second arguments value is no call (whole; streamed, the first one's pieces are out).
  p = parse(tools_of(ToolSyntax::kHermes),
            {R"(<tool_call>{"name": "f", "arguments": {"a": 1}, "arguments": {"b": 2}})"});
  EXPECT_TRUE(p.calls.empty());
  // A name the request does not offer.
  ChatOutputOptions named = tools_of(ToolSyntax::kHermes);
  named.tool_names = {"get_weather"};
  p = parse_every_way(named, R"(<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>)");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, R"(<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>)");
  // A good call, then a bad one and more text: the call stands, the rest is content (streamed,
  // the bad call's first pieces are out before it turns bad; nothing after it is lost).
  const std::string text = R"(<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>)"
                           R"(<tool_call>{"name": "g", "arguments": {"a": 01}}</tool_call>after)";
  p = parse(tools_of(ToolSyntax::kHermes), {text});
  EXPECT_EQ(p.calls, (Calls{{"f", R"({"a": 1})"}}));
  EXPECT_EQ(p.content, R"(<tool_call>{"name": "g", "arguments": {"a": 01}}</tool_call>after)");
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  p = parse(tools_of(ToolSyntax::kHermes), bytes);
  EXPECT_EQ(p.calls[0], (std::pair<std::string, std::string>{"f", R"({"a": 1})"}));
  EXPECT_EQ(p.content, R"(<tool_call>{"name": "g", "arguments": {"a": 01}}</tool_call>after)");
}

ChatOutputOptions reasoning(bool open) {
  ChatOutputOptions o;
  o.reasoning = true;
  o.reasoning_open = open;
  return o;
}

TEST(Reasoning, SplitsTheThinkBlockWhereverTheTagsAreCut) {
  Parsed p = parse_every_way(reasoning(false),
                             "<think>\nThe user wants 2+2.\nThat is 4.\n</think>\n\nIt is 4.");
  EXPECT_EQ(p.reasoning, "The user wants 2+2.\nThat is 4.");
  EXPECT_EQ(p.content, "It is 4.");
  // Opened by the prompt (DeepSeek-R1's template ends with "<think>\n").
  p = parse_every_way(reasoning(true), "Hmm, 3 < 4.\n</think>\nYes.");
  EXPECT_EQ(p.reasoning, "Hmm, 3 < 4.");
  EXPECT_EQ(p.content, "Yes.");
  // No block: all content, "<think>" later in the answer included.
  p = parse_every_way(reasoning(false), "  Use <think> tags.");
  EXPECT_EQ(p.reasoning, "");
  EXPECT_EQ(p.content, "  Use <think> tags.");
  // Blank pieces and held-back tag starts make no empty deltas.
  ChatOutputParser parser(reasoning(false));
  for (const char* piece : {"<think>", "\n\n", "a", "\n", "</th", "ink>", "\n\n", "b"})
    for (const ChatDelta& d : parser.push(piece)) EXPECT_FALSE(d.text.empty()) << piece;
  // An unfinished block (max_tokens) is reasoning.
  p = parse_every_way(reasoning(false), "<think>still going");
  EXPECT_EQ(p.reasoning, "still going");
  EXPECT_EQ(p.content, "");
}

TEST(Reasoning, ThenToolCalls) {
  ChatOutputOptions o = tools_of(ToolSyntax::kHermes);
  o.reasoning = true;
  const Parsed p = parse_every_way(
      o,
      "<think>I need the weather.</think>\n\n<tool_call>\n{\"name\": \"w\", \"arguments\": "
      "{}}\n</tool_call>");
  EXPECT_EQ(p.reasoning, "I need the weather.");
  EXPECT_EQ(p.content, "");
  EXPECT_EQ(p.calls, (Calls{{"w", "{}"}}));
}

bool grammar_accepts(const grammar::Grammar& g, const std::string& text) {
  grammar::Matcher m(g);
  for (char c : text)
    if (!m.advance(static_cast<uint8_t>(c))) return false;
  return m.accepting();
}

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"]}}},
  {"type": "function", "function": {"name": "ping"}}])");

TEST(ForcedCalls, GrammarsWriteEachFamilysSyntax) {
  const ToolChoice required{ToolChoice::kRequired, ""};
  struct Case {
    ToolSyntax syntax;
    bool parallel;
    std::string good, bad;
  };
  const Case cases[] = {
      {ToolSyntax::kHermes, true,
       "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\", \"unit\": \"c\"}}\n"
       "</tool_call>\n<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>",
       "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>"},
      {ToolSyntax::kLlama3, false, "{\"name\": \"ping\", \"parameters\": {}}",
       "{\"name\": \"ping\", \"arguments\": {}}"},
      {ToolSyntax::kMistral, true,
       "[{\"name\": \"ping\", \"arguments\": {}}, {\"name\": \"ping\", \"arguments\": {}}]",
       "[{\"name\": \"pong\", \"arguments\": {}}]"},
      {ToolSyntax::kMistralArgs, false, "get_weather[ARGS]{\"city\": \"x\", \"unit\": \"f\"}",
       "get_weather[ARGS]{\"city\": \"x\", \"unit\": \"k\"}"},
      {ToolSyntax::kPhi4, false, "{\"name\": \"ping\", \"arguments\": {}}", "[]"},
      {ToolSyntax::kGeneric, true, "{\"tool_calls\": [{\"name\": \"ping\", \"arguments\": {}}]}",
       "{\"tool_calls\": []}"},
  };
  for (const Case& c : cases) {
    const grammar::Grammar g = forced_call_grammar(c.syntax, kTools, required, c.parallel);
    EXPECT_TRUE(grammar_accepts(g, c.good)) << syntax_name(c.syntax);
    EXPECT_FALSE(grammar_accepts(g, c.bad)) << syntax_name(c.syntax);
    // What the grammar lets through, after the opening the prompt ends with, parses as calls.
    const Parsed p =
        parse_every_way(tools_of(c.syntax), std::string(call_opening(c.syntax)) + c.good);
    EXPECT_FALSE(p.calls.empty()) << syntax_name(c.syntax);
    EXPECT_EQ(p.content, "") << syntax_name(c.syntax);
  }
  // A named function: only that one.
  const grammar::Grammar named = forced_call_grammar(
      ToolSyntax::kHermes, kTools, ToolChoice{ToolChoice::kFunction, "ping"}, false);
  EXPECT_TRUE(grammar_accepts(named, "{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(grammar_accepts(
      named,
      "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a\", \"unit\": \"c\"}}\n"
      "</tool_call>"));
  EXPECT_THROW(forced_call_grammar(ToolSyntax::kHermes, kTools,
                                   ToolChoice{ToolChoice::kFunction, "nope"}, false),
               grammar::SchemaError);
}

std::string read_template(const std::string& name) {
  const char* dir = std::getenv("EMBER_TESTDATA");
  std::ifstream in(std::string(dir ? dir : EMBER_DEFAULT_TESTDATA) + "/templates/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ToolTemplates, TheSyntaxIsFoundInTheTemplate) {
  const std::pair<const char*, ToolSyntax> cases[] = {
      {"qwen2.5-7b-instruct.jinja", ToolSyntax::kHermes},
      {"qwen3-0.6b.jinja", ToolSyntax::kHermes},
      {"hermes-3-llama3.1-tool_use.jinja", ToolSyntax::kHermes},
      {"llama-3.1-8b-instruct.jinja", ToolSyntax::kLlama3},
      {"llama-3.3-70b-instruct.jinja", ToolSyntax::kLlama3},
      {"mistral-nemo-2407.jinja", ToolSyntax::kMistral},
      {"mistral-small-3.2-2506.jinja", ToolSyntax::kMistralArgs},
      {"phi-4-mini-llamacpp.jinja", ToolSyntax::kPhi4},
      {"smollm2-135m-instruct.jinja", ToolSyntax::kGeneric},
      {"gemma-3-it.jinja", ToolSyntax::kGeneric},
  };
  for (const auto& [file, syntax] : cases) {
    const std::string source = read_template(file);
    ASSERT_FALSE(source.empty()) << file;
    EXPECT_EQ(syntax_name(tool_support(source).syntax), std::string(syntax_name(syntax))) << file;
  }
}

ChatRequest weather_chat() {
  ChatRequest r;
  r.messages = json::parse(R"([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Rome?"},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
      "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\", \"unit\": \"c\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "21 C, sunny"},
    {"role": "user", "content": "And tomorrow?"}])");
  r.tools = kTools;
  return r;
}

TEST(ToolTemplates, NativeTemplatesGetToolsCallsAndResults) {
  const ChatTemplate qwen(read_template("qwen2.5-7b-instruct.jinja"), "model", "", "<|im_end|>");
  const TemplateTraits traits = template_traits(qwen, text::Vocab());
  ChatRequest r = weather_chat();
  PreparedChat p = prepare_chat(qwen, traits, r);
  EXPECT_NE(p.prompt.find("\"name\": \"get_weather\""), std::string::npos);  // the tools
  // The earlier call with its arguments as an object, and the result under the tool role.
  EXPECT_NE(p.prompt.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                          "\"Rome\", \"unit\": \"c\"}}\n</tool_call>"),
            std::string::npos)
      << p.prompt;
  EXPECT_NE(p.prompt.find("<tool_response>\n21 C, sunny\n</tool_response>"), std::string::npos);
  EXPECT_FALSE(p.grammar);
  EXPECT_TRUE(p.output.tools);
  // Forced: the prompt ends with the call's opening and a grammar takes over.
  r.tool_choice = {ToolChoice::kFunction, "get_weather"};
  p = prepare_chat(qwen, traits, r);
  EXPECT_TRUE(p.grammar);
  EXPECT_EQ(p.prompt.substr(p.prompt.size() - 34), "<|im_start|>assistant\n<tool_call>\n");
  EXPECT_EQ(p.output_prefix, "<tool_call>\n");
  // tool_choice none: no tools shown, nothing parsed.
  r.tool_choice = {ToolChoice::kNone, ""};
  p = prepare_chat(qwen, traits, r);
  EXPECT_FALSE(p.output.tools);
  EXPECT_EQ(p.prompt.find("\"name\": \"ping\""), std::string::npos);
}

TEST(ToolTemplates, OtherTemplatesGetTheToolsInWords) {
  // Gemma 3's template knows nothing of tools and insists that roles alternate.
  const ChatTemplate gemma(read_template("gemma-3-it.jinja"), "model", "<bos>", "<eos>");
  const TemplateTraits traits = template_traits(gemma, text::Vocab());
  EXPECT_FALSE(traits.tools.renders_tools);
  const PreparedChat p = prepare_chat(gemma, traits, weather_chat());
  EXPECT_NE(p.prompt.find("You can call functions"), std::string::npos);
  EXPECT_NE(p.prompt.find("{\"tool_calls\": [{\"name\": \"<function name>\""), std::string::npos);
  EXPECT_NE(
      p.prompt.find(
          R"({"tool_calls":[{"name":"get_weather","arguments":{"city":"Rome","unit":"c"}}]})"),
      std::string::npos)
      << p.prompt;
  EXPECT_NE(p.prompt.find(R"({"tool_response":{"tool_call_id":"call_1","content":"21 C, sunny"}})"),
            std::string::npos);
  EXPECT_EQ(p.output.syntax, ToolSyntax::kGeneric);
}

TEST(ReasoningTemplates, DeepSeekOpensTheBlockInThePrompt) {
  const ChatTemplate r1(read_template("deepseek-r1-distill-qwen-32b.jinja"), "model", "", "");
  const TemplateTraits traits = template_traits(r1, text::Vocab());
  EXPECT_TRUE(traits.reasoning);
  ChatRequest r;
  r.messages = json::parse(R"([{"role": "user", "content": "Hi"}])");
  const PreparedChat p = prepare_chat(r1, traits, r);
  EXPECT_TRUE(p.output.reasoning);
  EXPECT_EQ(p.output.reasoning_open, ReasoningSplitter::opened_by(p.prompt));
  r.parse_reasoning = false;
  EXPECT_FALSE(prepare_chat(r1, traits, r).output.reasoning);
}

}  // namespace
}  // namespace ember::chat
