#include "model/chat/chat_request.h"

#include "model/chat/jinja_json.h"

namespace ember::chat {
namespace {

using json = nlohmann::ordered_json;

// A message's content as text ("" when null: an assistant message that only calls tools).
std::string content_of(const json& message) {
  auto it = message.find("content");
  return it != message.end() && it->is_string() ? it->get<std::string>() : "";
}

// The function objects of `tools` that `choice` allows.
std::vector<const json*> allowed_functions(const json& tools, const ToolChoice& choice) {
  std::vector<const json*> out;
  for (const json& tool : tools) {
    const json& f = tool.at("function");
    if (choice.mode == ToolChoice::kFunction && f.value("name", "") != choice.function) continue;
    out.push_back(&f);
  }
  return out;
}

// The tools in words, for a template that does not render them, and how to call them: the
// generic syntax of tool_calls.h.
std::string describe_tools(const json& tools) {
  std::string text =
      "You can call functions. Their names, descriptions and parameters (as JSON Schema):\n";
  for (const json& tool : tools) text += tool.at("function").dump() + "\n";
  text +=
      "To call functions, answer with only this JSON and nothing else: "
      "{\"tool_calls\": [{\"name\": \"<function name>\", \"arguments\": {<the arguments>}}]}. "
      "Otherwise answer in plain text.";
  return text;
}

// A tool call as the model would have written it in `syntax`, for templates that do not render
// assistant messages' tool_calls.
std::string call_text(ToolSyntax syntax, const json& calls) {
  json list = json::array();
  for (const json& call : calls) {
    const json& f = call.contains("function") ? call["function"] : call;
    json args = f.value("arguments", json::object());
    if (args.is_string()) {
      json parsed = json::parse(args.get<std::string>(), nullptr, false);
      if (!parsed.is_discarded()) args = parsed;
    }
    list.push_back({{"name", f.value("name", "")}, {"arguments", args}});
  }
  switch (syntax) {
    case ToolSyntax::kHermes: {
      std::string text;
      for (const json& c : list) text += "<tool_call>\n" + c.dump() + "\n</tool_call>\n";
      return text;
    }
    case ToolSyntax::kMistral:
    case ToolSyntax::kMistralArgs:
      return "[TOOL_CALLS]" + list.dump();
    case ToolSyntax::kPhi4:
      return "<|tool_call|>" + list.dump() + "<|/tool_call|>";
    case ToolSyntax::kLlama3: {
      std::string text;
      for (const json& c : list)
        text += json{{"name", c["name"]}, {"parameters", c["arguments"]}}.dump() + "\n";
      return text;
    }
    case ToolSyntax::kGeneric:
      break;
  }
  return json{{"tool_calls", list}}.dump();
}

// The messages as the template can take them. Assistant tool calls get their arguments as
// objects (templates print them with tojson); what the template cannot show becomes text.
json adapt_messages(const json& messages, const TemplateTraits& traits, bool describe,
                    const json& tools) {
  const ToolSupport& t = traits.tools;
  json out = json::array();
  for (const json& m : messages) {
    json copy = m;
    const std::string role = m.value("role", "");
    if (role == "assistant" && m.contains("tool_calls") && m["tool_calls"].is_array()) {
      if (t.renders_tool_calls) {
        for (json& call : copy["tool_calls"]) {
          json* f = call.contains("function") ? &call["function"] : &call;
          if (f->contains("arguments") && (*f)["arguments"].is_string()) {
            json parsed = json::parse((*f)["arguments"].get<std::string>(), nullptr, false);
            if (!parsed.is_discarded()) (*f)["arguments"] = parsed;
          }
        }
      } else {
        const std::string before = content_of(m);
        copy["content"] =
            (before.empty() ? "" : before + "\n") + call_text(t.syntax, m["tool_calls"]);
        copy.erase("tool_calls");
      }
    }
    if (role == "tool" && !t.renders_tool_role) {
      // A tool result as the user's message. It shares one with the results and user message
      // next to it: many templates insist that user and assistant alternate.
      json result = {{"tool_response",
                      {{"tool_call_id", m.value("tool_call_id", "")}, {"content", content_of(m)}}}};
      copy = {{"role", "user"}, {"content", result.dump()}, {"from_tool", true}};
    }
    if (!out.empty() && copy.value("role", "") == "user" &&
        out.back().value("role", "") == "user" &&
        (copy.value("from_tool", false) || out.back().value("from_tool", false))) {
      out.back()["content"] = content_of(out.back()) + "\n" + content_of(copy);
      out.back()["from_tool"] = true;
      continue;
    }
    out.push_back(std::move(copy));
  }
  for (json& m : out) m.erase("from_tool");
  if (describe) {
    const std::string text = describe_tools(tools);
    if (!out.empty() && out[0].value("role", "") == "system")
      out[0]["content"] = content_of(out[0]) + "\n\n" + text;
    else
      out.insert(out.begin(), json{{"role", "system"}, {"content", text}});
  }
  return out;
}

}  // namespace

TemplateTraits template_traits(const ChatTemplate& chat, const text::Vocab& vocab) {
  TemplateTraits t;
  t.tools = tool_support(chat.source());
  t.reasoning = chat.source().find("<think>") != std::string::npos || vocab.find("<think>") >= 0;
  return t;
}

grammar::Grammar forced_call_grammar(ToolSyntax syntax, const json& tools, const ToolChoice& choice,
                                     bool parallel) {
  static const json kNoParameters = {{"type", "object"}, {"properties", json::object()}};
  const char* key = syntax == ToolSyntax::kLlama3 ? "parameters" : "arguments";
  std::vector<grammar::Form> forms;
  for (const json* f : allowed_functions(tools, choice)) {
    const json* params = f->contains("parameters") ? &(*f)["parameters"] : &kNoParameters;
    const std::string name = (*f)["name"].get<std::string>();
    if (syntax == ToolSyntax::kMistralArgs)
      forms.push_back({{name + "[ARGS]"}, {"", params}});
    else
      forms.push_back(
          {{"{\"name\": " + json(name).dump() + ", \"" + key + "\": "}, {"", params}, {"}"}});
  }
  if (forms.empty())
    throw grammar::SchemaError("tool_choice", "'tool_choice' names function '" + choice.function +
                                                  "', which is not among the 'tools'");
  grammar::Framing framing;
  framing.max_items = parallel ? 0 : 1;
  switch (syntax) {
    case ToolSyntax::kHermes:
      framing.separator = "\n</tool_call>\n<tool_call>\n";
      framing.suffix = "\n</tool_call>";
      break;
    case ToolSyntax::kMistral:
      framing = {"[", ", ", "]", framing.max_items};
      break;
    case ToolSyntax::kGeneric:
      framing = {"{\"tool_calls\": [", ", ", "]}", framing.max_items};
      break;
    default:  // one call: what would separate several is a control token
      framing.max_items = 1;
  }
  return grammar::grammar_from_forms(forms, framing);
}

PreparedChat prepare_chat(const ChatTemplate& chat, const TemplateTraits& traits,
                          const ChatRequest& request) {
  PreparedChat out;
  const bool tools = !request.tools.empty() && request.tool_choice.mode != ToolChoice::kNone;
  const bool describe = tools && !traits.tools.renders_tools;
  json extra = request.template_kwargs;
  if (tools) {
    extra["tools"] = request.tools;
    if (request.tool_choice.mode == ToolChoice::kRequired)
      extra["tool_choice"] = "required";
    else if (request.tool_choice.mode == ToolChoice::kFunction)
      extra["tool_choice"] = {{"type", "function"},
                              {"function", {{"name", request.tool_choice.function}}}};
    else
      extra["tool_choice"] = "auto";
  }
  const jinja::Value messages =
      jinja::from_json(adapt_messages(request.messages, traits, describe, request.tools));
  const jinja::Value extra_value = jinja::from_json(extra);
  out.prompt = request.continue_final ? chat.render_continuing(messages, extra_value)
                                      : chat.render(messages, true, extra_value);

  out.output.tools = tools;
  out.output.syntax = traits.tools.syntax;
  out.output.reasoning = request.parse_reasoning && traits.reasoning;
  out.output.reasoning_open =
      out.output.reasoning && !request.continue_final && ReasoningSplitter::opened_by(out.prompt);
  if (tools) out.markers = syntax_markers(traits.tools.syntax);
  if (out.output.reasoning) {
    out.markers.push_back("<think>");
    out.markers.push_back("</think>");
  }
  const bool forced = tools && (request.tool_choice.mode == ToolChoice::kRequired ||
                                request.tool_choice.mode == ToolChoice::kFunction);
  // A grammar shapes the answer, not the reasoning: a block the prompt opened is closed first.
  if (out.output.reasoning_open && (forced || request.constrained) && !request.continue_final)
    out.output_prefix = "</think>\n\n";
  if (forced && !request.continue_final) {
    // The call's opening goes into the prompt (a control token there, as the model knows it);
    // the grammar takes over after it.
    out.output_prefix += call_opening(traits.tools.syntax);
    out.grammar = std::make_shared<const grammar::Grammar>(forced_call_grammar(
        traits.tools.syntax, request.tools, request.tool_choice, request.parallel_tool_calls));
  }
  out.prompt += out.output_prefix;
  if (tools)
    for (const json& t : request.tools) out.output.tool_names.push_back(t["function"]["name"]);
  return out;
}

}  // namespace ember::chat
