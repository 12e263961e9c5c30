// A chat request made ready for a model: the messages rendered through its template with the
// tools, what the template cannot show put in words it can (tools described in the system
// prompt, earlier calls and their results as text), and for a forced tool call the opening of
// the call appended to the prompt and a grammar for the rest (model/grammar).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/chat/chat_output.h"
#include "model/chat/chat_template.h"
#include "model/grammar/grammar.h"
#include "model/grammar/json_schema.h"

namespace ember::chat {

struct ToolChoice {
  enum Mode { kAuto, kNone, kRequired, kFunction } mode = kAuto;
  std::string function;  // kFunction: the function to call
};

// The chat fields of an OpenAI-style request, checked (server/api_request.cpp).
struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // content as text
  nlohmann::ordered_json tools = nlohmann::ordered_json::array();     // {"type": "function", ...}
  ToolChoice tool_choice;
  bool parallel_tool_calls = true;
  nlohmann::ordered_json template_kwargs =
      nlohmann::ordered_json::object();  // chat_template_kwargs
  bool continue_final = false;           // the last message starts the answer: continue it
  bool parse_reasoning = true;           // reasoning_format other than "none"
  bool constrained = false;              // a grammar shapes the answer (response_format, grammar)
};

struct PreparedChat {
  std::string prompt;
  std::shared_ptr<const grammar::Grammar> grammar;  // a forced call's; null otherwise
  ChatOutputOptions output;
  std::string output_prefix;         // the forced call's opening: the parser reads it first
  std::vector<std::string> markers;  // texts the output must show even when control tokens
};

// What a model's template can do, found once per model.
struct TemplateTraits {
  ToolSupport tools;
  bool reasoning = false;  // the template or vocabulary knows <think>
};
TemplateTraits template_traits(const ChatTemplate& chat, const text::Vocab& vocab);

// Throws jinja::Error when the template fails, grammar::SchemaError for a function's
// parameters that cannot be forced.
PreparedChat prepare_chat(const ChatTemplate& chat, const TemplateTraits& traits,
                          const ChatRequest& request);

// The grammar that forces one call (or, with parallel, several) of the `tools` allowed by
// `choice` in `syntax`, starting after call_opening(syntax). Throws grammar::SchemaError.
grammar::Grammar forced_call_grammar(ToolSyntax syntax, const nlohmann::ordered_json& tools,
                                     const ToolChoice& choice, bool parallel);

}  // namespace ember::chat
