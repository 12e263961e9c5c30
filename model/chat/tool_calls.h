// Tool calls: how a model family writes them (its syntax, chosen from the chat template), the
// parser that turns a streamed answer into content and calls, and the grammar that forces a
// well-formed call (tool_choice "required" or a named function).
//
// Syntaxes, as the families' chat templates teach them:
//   hermes   <tool_call>\n{"name": N, "arguments": {...}}\n</tool_call>   (Hermes 2/3, Qwen 2.5/3,
//            QwQ, SmolLM3); several calls one after another
//   llama3   {"name": N, "parameters": {...}}, optionally after <|python_tag|> (Llama 3.1–3.3)
//   mistral  [TOOL_CALLS][{"name": N, "arguments": {...}, "id": I}, ...] (Mistral v0.3, Nemo) and
//            [TOOL_CALLS]N[CALL_ID]I[ARGS]{...} (Mistral Small 3.2, Devstral)
//   phi4     <|tool_call|>{"name": N, "arguments": {...}}<|/tool_call|> (Phi-4-mini; a list too)
//   generic  {"tool_calls": [{"name": N, "arguments": {...}}, ...]} for templates that do not
//            render tools: ember describes the tools in the system prompt itself (prepare_chat).
// Arguments are handed out as the JSON text the model wrote (an OpenAI `arguments` string); a
// model that writes them as a JSON string gets that string's content.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ember::chat {

enum class ToolSyntax { kGeneric, kHermes, kLlama3, kMistral, kMistralArgs, kPhi4 };

// What a chat template does with tools, found in its source.
struct ToolSupport {
  ToolSyntax syntax = ToolSyntax::kGeneric;
  bool renders_tools = false;       // it prints the `tools` it is given
  bool renders_tool_calls = false;  // it prints assistant messages' tool_calls
  bool renders_tool_role = false;   // it prints role "tool" messages (tool results)
};
ToolSupport tool_support(std::string_view template_source);
const char* syntax_name(ToolSyntax syntax);  // "hermes", "llama3", ...

// The text that opens a call in `syntax` ("<tool_call>\n", "[TOOL_CALLS]", ...; "" for
// llama3/generic) and the marker texts that may be control tokens the output must show.
std::string_view call_opening(ToolSyntax syntax);
std::vector<std::string> syntax_markers(ToolSyntax syntax);

// One piece of a parsed answer, in order. A tool call arrives as kToolCall (index, id, name,
// arguments possibly empty) and then kToolArguments pieces (index, text) that append to it.
struct ChatDelta {
  enum Kind { kContent, kReasoning, kToolCall, kToolArguments };
  ChatDelta(Kind kind, std::string text, int index = 0, std::string id = "", std::string name = "")
      : kind(kind), text(std::move(text)), index(index), id(std::move(id)), name(std::move(name)) {}
  Kind kind;
  std::string text;  // content, reasoning, or a piece of a call's arguments
  int index = 0;     // the call's position in the answer
  std::string id, name;
};

// Splits streamed text into content and tool calls. Text that may start a call is held back
// until it does or cannot; a call's name is handed out as soon as it is read and its arguments
// as they arrive (when the model writes the name first, as every family's template shows it).
// Text that turns out not to be a well-formed call is handed out as content at the end.
class ToolCallParser {
 public:
  // `names`: the request's functions; a call of another name is content (empty: any name).
  // Ids are ember's, as OpenAI writes them ("call_" + 24 characters), or 9 letters and digits
  // for the Mistral syntaxes, whose templates insist on that form.
  explicit ToolCallParser(ToolSyntax syntax, std::vector<std::string> names = {});

  void push(std::string_view text, std::vector<ChatDelta>& out);
  void finish(std::vector<ChatDelta>& out);
  int calls() const { return static_cast<int>(calls_.size()); }

 private:
  struct CallState {
    std::string id, name;
    size_t arguments_sent = 0;  // bytes of the arguments handed out
  };
  void emit_calls(bool final, std::vector<ChatDelta>& out);
  std::string new_id() const;

  ToolSyntax syntax_;
  std::vector<std::string> names_;
  std::string pending_;        // text not yet handed out as content
  bool in_calls_ = false;      // pending_ starts where calls (may) begin
  bool content_seen_ = false;  // something other than blanks went out as content
  std::vector<CallState> calls_;
  size_t parsed_end_ = 0;    // in pending_: just after the last complete call
  int streaming_call_ = -1;  // the call whose object of arguments is being written, if any
};

}  // namespace ember::chat
