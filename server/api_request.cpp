#include "server/api_request.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "model/grammar/gbnf.h"
#include "model/grammar/json_schema.h"

namespace ember::server {
namespace {

using json = nlohmann::ordered_json;

double number(const json& body, const char* key, double fallback, double lo, double hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw ApiError(400, std::string("'") + key + "' must be a number", key);
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi))
    throw ApiError(400,
                   std::string("'") + key + "' must be between " + format_number(lo) + " and " +
                       format_number(hi) + " (got " + format_number(v) + ")",
                   key, "invalid_request_error", "invalid_value");
  return v;
}

bool boolean(const json& body, const char* key, bool fallback) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean())
    throw ApiError(400, std::string("'") + key + "' must be true or false", key);
  return it->get<bool>();
}

// The text of a message's content: a string, or a list of parts of which only text can be
// honoured — an image, audio or file part is refused rather than dropped (the model would
// answer as if it had seen it).
std::string text_content(const json& content, const std::string& where, const std::string& model) {
  if (content.is_null()) return "";
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {
    std::string out;
    for (size_t i = 0; i < content.size(); ++i) {
      const json& part = content[i];
      const std::string at = where + ".content[" + std::to_string(i) + "]";
      if (!part.is_object()) throw ApiError(400, at + " is not an object", "messages");
      auto type = part.find("type");
      if (type == part.end() || !type->is_string())
        throw ApiError(400, at + " needs a 'type' string", "messages");
      const std::string kind = type->get<std::string>();
      const char* field = kind == "text" ? "text" : kind == "refusal" ? "refusal" : nullptr;
      if (!field)
        throw ApiError(400,
                       at + " is an '" + kind + "' part, but model '" + model +
                           "' takes text only (ember serves no vision or audio models yet)",
                       "messages", "invalid_request_error", "unsupported_content");
      auto t = part.find(field);
      if (t == part.end() || !t->is_string())
        throw ApiError(400, at + " is a " + kind + " part without '" + field + "'", "messages");
      out += t->get<std::string>();
    }
    return out;
  }
  throw ApiError(400, where + ": content must be a string or a list of parts", "messages");
}

// The grammar the output must follow, from response_format (json_object, json_schema with its
// schema), llama-server's json_schema field or Ollama's format ("json" or a schema); null when
// none is asked for. A schema ember cannot honour is a 400 naming the keyword.
std::shared_ptr<const grammar::Grammar> output_grammar(const json& body, Endpoint endpoint) {
  // llama-server's `grammar`: GBNF text, alone.
  if (auto g = body.find("grammar"); g != body.end() && !g->is_null()) {
    if (!g->is_string()) throw ApiError(400, "'grammar' must be a string of GBNF", "grammar");
    if (!g->get<std::string>().empty()) {
      auto rf = body.find("response_format");
      const bool schema =
          (rf != body.end() && rf->is_object() && rf->value("type", "text") != "text") ||
          (body.contains("json_schema") && !body["json_schema"].is_null()) ||
          ((endpoint == Endpoint::kNativeGenerate || endpoint == Endpoint::kOllamaChat) &&
           body.contains("format") && !body["format"].is_null() && body["format"] != "");
      if (schema)
        throw ApiError(400, "send either 'grammar' or a JSON schema / response_format, not both",
                       "grammar");
      try {
        return std::make_shared<const grammar::Grammar>(
            grammar::grammar_from_gbnf(g->get<std::string>()));
      } catch (const grammar::GbnfError& e) {
        throw ApiError(400, std::string("'grammar': ") + e.what(), "grammar");
      }
    }
  }
  auto compile = [](const json& schema, const char* param) {
    try {
      return std::make_shared<const grammar::Grammar>(grammar::grammar_from_schema(schema));
    } catch (const grammar::SchemaError& e) {
      throw ApiError(400, std::string("'") + param + "': " + e.what(), param,
                     "invalid_request_error", "unsupported_parameter");
    } catch (const std::exception& e) {
      throw ApiError(400, std::string("'") + param + "': " + e.what(), param);
    }
  };
  if (auto rf = body.find("response_format"); rf != body.end() && rf->is_object()) {
    const std::string type = rf->value("type", "text");
    if (type == "json_object")
      return std::make_shared<const grammar::Grammar>(grammar::json_object_grammar());
    if (type == "json_schema") {
      // OpenAI: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}; llama-server
      // also takes {"type": "json_schema", "schema": ...}.
      const json* schema = nullptr;
      if (auto js = rf->find("json_schema");
          js != rf->end() && js->is_object() && js->contains("schema"))
        schema = &(*js)["schema"];
      else if (rf->contains("schema"))
        schema = &(*rf)["schema"];
      if (!schema)
        throw ApiError(400, "'response_format.json_schema.schema' is required", "response_format");
      return compile(*schema, "response_format");
    }
    return nullptr;
  }
  if (auto js = body.find("json_schema"); js != body.end() && !js->is_null())
    return compile(*js, "json_schema");
  if (endpoint == Endpoint::kNativeGenerate || endpoint == Endpoint::kOllamaChat)
    if (auto f = body.find("format"); f != body.end() && !f->is_null()) {
      if (f->is_string() && *f == "json")
        return std::make_shared<const grammar::Grammar>(grammar::json_object_grammar());
      if (f->is_string() && f->get<std::string>().empty()) return nullptr;
      if (!f->is_object())
        throw ApiError(400, "'format' must be \"json\" or a JSON schema", "format");
      return compile(*f, "format");
    }
  return nullptr;
}

// Fields that change what the output must be, which ember cannot honour yet: a 400 naming
// them, never a silently unconstrained answer.
void refuse_unsupported(const json& body, Endpoint endpoint) {
  auto present = [&](const char* key) {
    auto it = body.find(key);
    return it != body.end() && !it->is_null() &&
           !(it->is_string() && it->get<std::string>().empty());
  };
  if (present("response_format")) {
    const json& rf = body["response_format"];
    if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
      throw ApiError(400, "'response_format' must be an object with a 'type' string",
                     "response_format");
    const std::string type = rf["type"].get<std::string>();
    if (type != "text" && type != "json_object" && type != "json_schema")
      throw ApiError(
          400,
          "'response_format.type' must be 'text', 'json_object' or 'json_schema', not '" + type +
              "'",
          "response_format", "invalid_request_error", "invalid_value");
  }

  auto unsupported = [](const char* key, const std::string& why) {
    throw ApiError(400, std::string("'") + key + "' " + why, key, "invalid_request_error",
                   "unsupported_parameter");
  };
  if (auto it = body.find("logit_bias"); it != body.end() && it->is_object() && !it->empty())
    unsupported("logit_bias", "is not supported yet");
  if (auto it = body.find("echo"); it != body.end() && it->is_boolean() && it->get<bool>())
    unsupported("echo", "is not supported (the answer does not repeat the prompt)");
  if (present("suffix")) unsupported("suffix", "(text after the insertion) is not supported");
  if (present("functions"))
    unsupported("functions", "is the deprecated form of 'tools'; send 'tools' instead");
  if (auto it = body.find("function_call");
      it != body.end() && !it->is_null() && !(it->is_string() && (*it == "none" || *it == "auto")))
    unsupported("function_call", "cannot force a call; send 'tools' with 'tool_choice' \"auto\"");
  if (auto it = body.find("images"); it != body.end() && it->is_array() && !it->empty())
    unsupported("images", "cannot be honoured: ember serves text-only models (no vision yet)");
}

// tools, tool_choice and parallel_tool_calls (OpenAI's function tools), checked; a forced call's
// grammar is built once here so that a schema ember cannot force is a 400 naming 'tools'.
void parse_tools(const json& body, chat::ChatRequest& chat, bool constrained) {
  if (auto it = body.find("tools"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) throw ApiError(400, "'tools' must be a list", "tools");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& tool = (*it)[i];
      const std::string at = "tools[" + std::to_string(i) + "]";
      if (!tool.is_object() || !tool.contains("type") || tool["type"] != "function")
        throw ApiError(400,
                       at + " must be {\"type\": \"function\", \"function\": {...}} (ember "
                            "calls functions only)",
                       "tools");
      auto f = tool.find("function");
      if (f == tool.end() || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string() ||
          (*f)["name"].get<std::string>().empty())
        throw ApiError(400, at + ".function needs a non-empty 'name' string", "tools");
      if (f->contains("parameters") && !(*f)["parameters"].is_object())
        throw ApiError(400, at + ".function.parameters must be a JSON Schema object", "tools");
    }
    chat.tools = *it;
  }
  if (auto it = body.find("tool_choice"); it != body.end() && !it->is_null()) {
    const json& tc = *it;
    if (tc == "none") {
      chat.tool_choice.mode = chat::ToolChoice::kNone;
    } else if (tc == "auto") {
      chat.tool_choice.mode = chat::ToolChoice::kAuto;
    } else if (tc == "required") {
      chat.tool_choice.mode = chat::ToolChoice::kRequired;
    } else if (tc.is_object() && tc.contains("function") && tc["function"].is_object() &&
               tc["function"].contains("name") && tc["function"]["name"].is_string()) {
      chat.tool_choice.mode = chat::ToolChoice::kFunction;
      chat.tool_choice.function = tc["function"]["name"].get<std::string>();
      const bool known = std::any_of(chat.tools.begin(), chat.tools.end(), [&](const json& t) {
        return t["function"]["name"] == chat.tool_choice.function;
      });
      if (!known)
        throw ApiError(400,
                       "'tool_choice' names function '" + chat.tool_choice.function +
                           "', which is not among the 'tools'",
                       "tool_choice", "invalid_request_error", "invalid_value");
    } else {
      throw ApiError(400,
                     "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                     "{\"type\": \"function\", \"function\": {\"name\": ...}}",
                     "tool_choice", "invalid_request_error", "invalid_value");
    }
  }
  chat.parallel_tool_calls = boolean(body, "parallel_tool_calls", true);
  const bool forced = chat.tool_choice.mode == chat::ToolChoice::kRequired ||
                      chat.tool_choice.mode == chat::ToolChoice::kFunction;
  if (!forced) return;
  if (chat.tools.empty())
    throw ApiError(400, "'tool_choice' " + body["tool_choice"].dump() + " needs 'tools'",
                   "tool_choice");
  if (constrained)
    throw ApiError(400, "a forced tool call cannot also follow 'response_format' (send one)",
                   "tool_choice", "invalid_request_error", "unsupported_parameter");
  if (chat.continue_final)
    throw ApiError(400, "a forced tool call cannot continue a final assistant message",
                   "tool_choice", "invalid_request_error", "unsupported_parameter");
  try {
    chat::forced_call_grammar(chat::ToolSyntax::kGeneric, chat.tools, chat.tool_choice,
                              chat.parallel_tool_calls);
  } catch (const grammar::SchemaError& e) {
    throw ApiError(400,
                   std::string("'tools': a function's parameters cannot be forced: ") + e.what(),
                   "tools", "invalid_request_error", "unsupported_parameter");
  }
}

// Ollama's `options` of /api/generate: the sampling ones are honoured, those that only tune
// the runtime are accepted (ember sizes these itself), anything else is refused by name.
void apply_ollama_options(const json& body, model::GenerateRequest& g) {
  auto it = body.find("options");
  if (it == body.end() || it->is_null()) return;
  if (!it->is_object()) throw ApiError(400, "'options' must be an object", "options");
  static const char* kRuntime[] = {"num_ctx",  "num_thread", "num_gpu",    "num_batch",
                                   "main_gpu", "use_mmap",   "use_mlock",  "numa",
                                   "low_vram", "f16_kv",     "vocab_only", "num_keep"};
  model::SamplingParams& s = g.sampling;
  for (const auto& item : it->items()) {  // (no structured binding: the lambda uses `value`)
    const std::string& key = item.key();
    const json& value = item.value();
    const std::string where = "options." + key;
    auto num = [&](double lo, double hi) {
      if (!value.is_number()) throw ApiError(400, "'" + where + "' must be a number", "options");
      const double v = value.get<double>();
      if (!(v >= lo && v <= hi))
        throw ApiError(
            400,
            "'" + where + "' must be between " + format_number(lo) + " and " + format_number(hi),
            "options", "invalid_request_error", "invalid_value");
      return v;
    };
    if (value.is_null()) continue;  // as Ollama: a null option is its default
    // Options whose given value changes nothing (Open WebUI forwards them as set).
    const bool neutral = (key == "mirostat" && value == 0) ||
                         ((key == "mirostat_tau" || key == "mirostat_eta") && value.is_number()) ||
                         ((key == "typical_p" || key == "tfs_z") && value == 1) ||
                         (key == "penalize_newline" && value == true);
    if (neutral) continue;
    if (key == "repeat_last_n") {  // −1: the whole context
      const double n = num(-1, 1e9);
      s.penalty_last_n = n < 0 ? 1 << 30 : static_cast<int>(n);
    } else if (key == "temperature")
      s.temperature = static_cast<float>(num(0, 100));
    else if (key == "top_p")
      s.top_p = static_cast<float>(num(0, 1));
    else if (key == "top_k")
      s.top_k = static_cast<int>(num(0, 1e9));
    else if (key == "min_p")
      s.min_p = static_cast<float>(num(0, 1));
    else if (key == "repeat_penalty")
      s.repeat_penalty = static_cast<float>(num(0, 100));
    else if (key == "presence_penalty")
      s.presence_penalty = static_cast<float>(num(-2, 2));
    else if (key == "frequency_penalty")
      s.frequency_penalty = static_cast<float>(num(-2, 2));
    else if (key == "seed") {  // negative (Ollama's -1): random, as without a seed
      const double v = num(-9.2e18, 9.2e18);
      if (v >= 0) s.seed = static_cast<uint64_t>(v);
    } else if (key == "num_predict") {  // -1: no limit (up to the context)
      const double n = num(-2, 1e9);
      g.max_tokens = n < 0 ? 1 << 30 : static_cast<int>(n);
    } else if (key == "stop") {
      g.stop.clear();
      const json list = value.is_string() ? json::array({value}) : value;
      if (!list.is_array())
        throw ApiError(400, "'options.stop' must be a string or a list", "options");
      for (const json& x : list) {
        if (!x.is_string()) throw ApiError(400, "'options.stop' must hold strings", "options");
        if (!x.get<std::string>().empty()) g.stop.push_back(x.get<std::string>());
      }
    } else if (std::find(std::begin(kRuntime), std::end(kRuntime), key) == std::end(kRuntime)) {
      throw ApiError(400,
                     "'" + where +
                         "' is not supported (ember honours temperature, top_p, top_k, "
                         "min_p, num_predict, seed, stop, repeat_penalty, repeat_last_n, "
                         "presence_penalty, frequency_penalty; mirostat 0, typical_p 1 and "
                         "tfs_z 1 change nothing)",
                     "options", "invalid_request_error", "unsupported_parameter");
    }
  }
}

// Copies of chat messages with text content (text parts joined; other parts are refused by
// text_content), so templates see strings they can print; roles, tool calls and tool results
// checked. Ollama's form: tool calls without ids and with object arguments (given ids here),
// images refused.
json clean_messages(const json& messages, const std::string& model, bool ollama) {
  json cleaned = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw ApiError(400, where + " must be an object", "messages");
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      throw ApiError(400, where + " needs a 'role' string", "messages");
    static const char* kRoles[] = {"system", "user", "assistant", "tool", "developer", "function"};
    if (std::find(std::begin(kRoles), std::end(kRoles), role->get<std::string>()) ==
        std::end(kRoles))
      throw ApiError(400, where + " has an unknown role '" + role->get<std::string>() + "'",
                     "messages");
    if (auto images = m.find("images"); images != m.end() && images->is_array() && !images->empty())
      throw ApiError(400,
                     where + " has images, but model '" + model +
                         "' takes text only (ember serves no vision models yet)",
                     "messages", "invalid_request_error", "unsupported_content");
    json copy = m;
    copy.erase("images");
    copy.erase("thinking");  // Ollama's earlier reasoning: not shown to the model again
    if (role->get<std::string>() == "developer") copy["role"] = "system";
    auto content = m.find("content");
    copy["content"] = text_content(content == m.end() ? json() : *content, where, model);
    if (auto id = m.find("tool_call_id"); id != m.end() && !id->is_null() && !id->is_string())
      throw ApiError(400, where + ".tool_call_id must be a string", "messages");
    if (auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
      if (*role != "assistant" || !calls->is_array())
        throw ApiError(400, where + ".tool_calls must be a list on an assistant message",
                       "messages");
      for (size_t c = 0; c < calls->size(); ++c) {
        const json& call = (*calls)[c];
        const json* f = call.is_object() && call.contains("function") ? &call["function"] : nullptr;
        if (!f || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string())
          throw ApiError(400, where + ".tool_calls entries need function.name", "messages");
        if (ollama && !call.contains("id")) {
          copy["tool_calls"][c]["id"] = "call_" + std::to_string(i) + "_" + std::to_string(c);
          copy["tool_calls"][c]["type"] = "function";
        }
      }
    } else {
      copy.erase("tool_calls");
    }
    cleaned.push_back(std::move(copy));
  }
  return cleaned;
}

// The chat half of a request: messages, template kwargs, tools, reasoning.
void setup_chat(const json& body, Job& job, json messages) {
  job.chat = true;
  chat::ChatRequest& chat = job.chat_request;
  // A final assistant message is the start of the answer: generation continues it.
  chat.continue_final =
      messages.back()["role"] == "assistant" && !messages.back().contains("tool_calls");
  chat.messages = std::move(messages);
  if (auto it = body.find("chat_template_kwargs"); it != body.end() && !it->is_null()) {
    if (!it->is_object())
      throw ApiError(400, "'chat_template_kwargs' must be an object", "chat_template_kwargs");
    for (auto& [k, v] : it->items()) chat.template_kwargs[k] = v;
  }
  chat.constrained = job.generation.grammar != nullptr;
  parse_tools(body, chat, chat.constrained);
  // llama-server's reasoning_format: "none" keeps <think> blocks in the content.
  if (auto it = body.find("reasoning_format"); it != body.end() && !it->is_null()) {
    static const char* kFormats[] = {"none", "auto", "deepseek"};
    if (!it->is_string() || std::find(std::begin(kFormats), std::end(kFormats),
                                      it->get<std::string>()) == std::end(kFormats))
      throw ApiError(400, "'reasoning_format' must be \"auto\", \"deepseek\" or \"none\"",
                     "reasoning_format", "invalid_request_error", "invalid_value");
    chat.parse_reasoning = *it != "none";
  }
}

// A Go duration as Ollama's keep_alive takes it ("5m", "1h30m", "10s", "-1", "0") or a number
// of seconds. Negative: for ever.
double parse_duration(const json& value) {
  if (value.is_number()) {
    const double seconds = value.get<double>();
    return std::isfinite(seconds) && std::fabs(seconds) <= 1e9 ? seconds : -1;
  }
  if (!value.is_string())
    throw ApiError(400, "'keep_alive' must be a duration or a number", "keep_alive");
  const std::string text = value.get<std::string>();
  const auto bad = [&] {
    return ApiError(400,
                    "'keep_alive' \"" + text + "\" is not a duration (like \"5m\", \"1h\", \"-1\")",
                    "keep_alive", "invalid_request_error", "invalid_value");
  };
  if (text.empty()) throw bad();
  double total = 0;
  size_t pos = 0;
  const bool negative = text[0] == '-';
  if (negative || text[0] == '+') ++pos;
  bool any = false;
  while (pos < text.size()) {
    size_t used = 0;
    double n;
    try {
      n = std::stod(text.substr(pos), &used);
    } catch (const std::exception&) {
      throw bad();
    }
    if (used == 0 || !std::isfinite(n) || n < 0) throw bad();
    pos += used;
    const std::string rest = text.substr(pos);
    static const std::pair<const char*, double> kUnits[] = {
        {"ns", 1e-9}, {"us", 1e-6}, {"\xc2\xb5s", 1e-6}, {"ms", 1e-3},
        {"s", 1},     {"m", 60},    {"h", 3600}};
    double unit = 0;
    size_t unit_length = 0;
    for (const auto& [name, seconds] : kUnits)
      if (rest.rfind(name, 0) == 0 && std::strlen(name) > unit_length)
        unit = seconds, unit_length = std::strlen(name);
    if (unit_length == 0) {
      if (pos != text.size() || any) throw bad();  // a bare number: seconds
      unit = 1;
    }
    total += n * unit;
    pos += unit_length;
    any = true;
  }
  // Beyond ~30 years is for ever (and keeps the clock arithmetic in range).
  if (total > 1e9) return -1;
  return negative ? -total : total;
}

// Ollama's own fields of /api/chat and /api/generate (keep_alive, think; options and stream's
// default are read with the common fields), and those it has that ember cannot honour.
void parse_ollama_fields(const json& body, Job& job) {
  if (auto k = body.find("keep_alive"); k != body.end() && !k->is_null())
    job.keep_alive_seconds = parse_duration(*k);
  if (auto t = body.find("think"); t != body.end() && !t->is_null()) {
    if (!t->is_boolean() && !t->is_string())
      throw ApiError(400, "'think' must be true, false or a level", "think");
    // Templates that can think take enable_thinking; the reasoning comes back as "thinking".
    job.chat_request.template_kwargs["enable_thinking"] = !(t->is_boolean() && !t->get<bool>());
  }
  for (const char* key : {"template", "context"}) {
    auto it = body.find(key);
    const bool given = it != body.end() && !it->is_null() &&
                       !(it->is_string() && it->get<std::string>().empty()) &&
                       !(it->is_array() && it->empty());
    if (given)
      throw ApiError(400,
                     std::string("'") + key +
                         (std::string(key) == "template"
                              ? "' (a Go template) is not supported: ember renders the model's "
                                "own Jinja template (or --chat-template-file)"
                              : "' (the token ids of an earlier answer) is not supported: send "
                                "the conversation to /api/chat"),
                     key, "invalid_request_error", "unsupported_parameter");
  }
}

// The inputs of an embedding request: OpenAI's `input` (a string, strings, token ids or lists
// of them), Ollama's /api/embed `input` (a string or strings) and /api/embeddings `prompt`.
void parse_embedding_fields(const json& body, Endpoint endpoint, ParsedRequest& out) {
  Job& job = out.job;
  job.embed = true;
  const char* field = endpoint == Endpoint::kOllamaEmbeddings ? "prompt" : "input";
  auto it = body.find(field);
  if (it == body.end() || it->is_null())
    throw ApiError(400, std::string("'") + field + "' is required", field, "invalid_request_error",
                   "missing_required_parameter");
  const json& input = *it;
  auto ids_of = [&](const json& list) {
    std::vector<int32_t> ids;
    for (const json& id : list) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
        throw ApiError(400, std::string("'") + field + "' token ids must be non-negative integers",
                       field);
      ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
    }
    return ids;
  };
  if (input.is_string()) {
    job.embed_texts.push_back(input.get<std::string>());
  } else if (input.is_array() && !input.empty() && endpoint == Endpoint::kEmbeddings &&
             input[0].is_number()) {
    job.embed_ids.push_back(ids_of(input));
  } else if (input.is_array() && !input.empty() && endpoint != Endpoint::kOllamaEmbeddings) {
    for (const json& item : input) {
      if (item.is_string())
        job.embed_texts.push_back(item.get<std::string>());
      else if (item.is_array() && endpoint == Endpoint::kEmbeddings)
        job.embed_ids.push_back(ids_of(item));
      else
        throw ApiError(400,
                       std::string("'") + field + "' must hold strings" +
                           (endpoint == Endpoint::kEmbeddings ? " or lists of token ids" : ""),
                       field);
    }
    if (!job.embed_texts.empty() && !job.embed_ids.empty())
      throw ApiError(400, std::string("'") + field + "' mixes texts and token ids", field);
  } else {
    throw ApiError(400, std::string("'") + field + "' must be a string or a non-empty list", field);
  }
  if (job.embed_texts.size() + job.embed_ids.size() > 2048)
    throw ApiError(400, std::string("'") + field + "' holds more than 2048 inputs", field);
  if (auto d = body.find("dimensions"); d != body.end() && !d->is_null()) {
    if (!d->is_number_integer() || d->get<int64_t>() < 1 || d->get<int64_t>() > 1 << 20)
      throw ApiError(400, "'dimensions' must be a positive integer", "dimensions");
    job.embed_dimensions = static_cast<int>(d->get<int64_t>());
  }
  if (auto f = body.find("encoding_format"); f != body.end() && !f->is_null()) {
    if (*f != "float" && *f != "base64")
      throw ApiError(400, "'encoding_format' must be \"float\" or \"base64\"", "encoding_format",
                     "invalid_request_error", "invalid_value");
    out.base64 = *f == "base64";
  }
  if (auto k = body.find("keep_alive"); k != body.end() && !k->is_null())
    job.keep_alive_seconds = parse_duration(*k);
}

}  // namespace

namespace {
ParsedRequest parse_request_checked(Endpoint endpoint, std::string_view body_text,
                                    const std::string& default_model,
                                    const std::vector<std::string>& available);
}  // namespace

std::string format_number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15)
    return std::to_string(static_cast<long long>(v));
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

ParsedRequest parse_request(Endpoint endpoint, std::string_view body_text,
                            const std::string& default_model,
                            const std::vector<std::string>& available) {
  // Every field is checked where it is read; a JSON type error that slips past those checks is
  // still the client's 400, never an escaped exception.
  try {
    return parse_request_checked(endpoint, body_text, default_model, available);
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(400, std::string("a field of the body has the wrong type: ") + e.what());
  }
}

namespace {

ParsedRequest parse_request_checked(Endpoint endpoint, std::string_view body_text,
                                    const std::string& default_model,
                                    const std::vector<std::string>& available) {
  json body;
  try {
    body = json::parse(body_text);
  } catch (const json::parse_error& e) {
    throw ApiError(400, "the body is not valid JSON (at byte " + std::to_string(e.byte) + "): " +
                            std::string(e.what()).substr(std::string(e.what()).find(':') + 2));
  } catch (const json::exception& e) {  // e.g. a number too large for a double
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) throw ApiError(400, "the body must be a JSON object");

  ParsedRequest out;
  Job& job = out.job;
  auto model = body.find("model");
  if (model != body.end() && !model->is_null()) {
    if (!model->is_string()) throw ApiError(400, "'model' must be a string", "model");
    job.model = model->get<std::string>();
  }
  if (job.model.empty()) job.model = default_model;
  if (job.model.empty()) {
    std::string names;
    for (const std::string& id : available) names += (names.empty() ? "" : ", ") + id;
    throw ApiError(400,
                   "'model' is required: this server has " +
                       (available.empty() ? std::string("no models") : "several: " + names),
                   "model", "invalid_request_error", "missing_required_parameter");
  }
  if (endpoint == Endpoint::kEmbeddings || endpoint == Endpoint::kOllamaEmbed ||
      endpoint == Endpoint::kOllamaEmbeddings) {
    parse_embedding_fields(body, endpoint, out);
    return out;
  }
  refuse_unsupported(body, endpoint);
  job.generation.grammar = output_grammar(body, endpoint);

  const bool ollama = endpoint == Endpoint::kOllamaChat || endpoint == Endpoint::kNativeGenerate;
  if (ollama) parse_ollama_fields(body, job);
  if (endpoint == Endpoint::kChat || endpoint == Endpoint::kOllamaChat) {
    auto messages = body.find("messages");
    const bool load_only =
        endpoint == Endpoint::kOllamaChat && (messages == body.end() || messages->is_null() ||
                                              (messages->is_array() && messages->empty()));
    if (load_only) {
      job.load_only = true;  // Ollama: no messages loads the model
    } else {
      if (messages == body.end() || !messages->is_array() || messages->empty())
        throw ApiError(400, "'messages' must be a non-empty list", "messages");
      setup_chat(body, job, clean_messages(*messages, job.model, ollama));
    }
  } else if (endpoint == Endpoint::kNativeGenerate) {  // Ollama's /api/generate
    if (auto t = body.find("tools"); t != body.end() && t->is_array() && !t->empty())
      throw ApiError(400, "'tools' belong to /api/chat (/api/generate returns no tool calls)",
                     "tools", "invalid_request_error", "unsupported_parameter");
    auto prompt = body.find("prompt");
    if (prompt != body.end() && !prompt->is_null() && !prompt->is_string())
      throw ApiError(400, "'prompt' must be a string", "prompt");
    const std::string text =
        prompt == body.end() || prompt->is_null() ? "" : prompt->get<std::string>();
    if (text.empty()) {
      job.load_only = true;  // an empty prompt loads the model
    } else if (boolean(body, "raw", false)) {
      job.prompt = text;  // as is, no template
    } else {
      // Through the model's chat template, as Ollama does: `system`, then the prompt.
      json messages = json::array();
      if (auto sys = body.find("system"); sys != body.end() && !sys->is_null()) {
        if (!sys->is_string()) throw ApiError(400, "'system' must be a string", "system");
        if (!sys->get<std::string>().empty())
          messages.push_back({{"role", "system"}, {"content", *sys}});
      }
      messages.push_back({{"role", "user"}, {"content", text}});
      setup_chat(body, job, std::move(messages));
    }
  } else {
    auto prompt = body.find("prompt");
    if (prompt == body.end() || prompt->is_null())
      throw ApiError(400, "'prompt' is required", "prompt");
    if (prompt->is_array()) {  // OpenAI allows a list of prompts; one is served
      if (prompt->size() != 1 || !(*prompt)[0].is_string())
        throw ApiError(400, "'prompt' must be a string (or a list of exactly one string)",
                       "prompt");
      job.prompt = (*prompt)[0].get<std::string>();
    } else if (prompt->is_string()) {
      job.prompt = prompt->get<std::string>();
    } else {
      throw ApiError(400, "'prompt' must be a string", "prompt");
    }
  }

  model::GenerateRequest& g = job.generation;
  model::SamplingParams& s = g.sampling;
  s.temperature = static_cast<float>(number(body, "temperature", s.temperature, 0, 100));
  s.top_p = static_cast<float>(number(body, "top_p", s.top_p, 0, 1));
  s.top_k = static_cast<int>(number(body, "top_k", s.top_k, 0, 1e9));
  s.min_p = static_cast<float>(number(body, "min_p", s.min_p, 0, 1));
  s.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", s.repeat_penalty, 0, 100));
  s.presence_penalty = static_cast<float>(number(body, "presence_penalty", 0, -2, 2));
  s.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", 0, -2, 2));
  if (body.contains("seed") && !body["seed"].is_null()) {
    if (!body["seed"].is_number_integer()) throw ApiError(400, "'seed' must be an integer", "seed");
    s.seed = static_cast<uint64_t>(body["seed"].get<int64_t>());
  } else {
    s.seed = std::random_device{}();
  }
  const double max_tokens =
      body.contains("max_completion_tokens")
          ? number(body, "max_completion_tokens", 256, 0, 1e9)
          : number(body, "max_tokens",
                   endpoint == Endpoint::kCompletion || endpoint == Endpoint::kShimmyGenerate ? 256
                                                                                              : 1e9,
                   0, 1e9);
  g.max_tokens = static_cast<int>(max_tokens);
  if (ollama) apply_ollama_options(body, g);  // after the top-level fields: options win
  g.ignore_eos = boolean(body, "ignore_eos", false);
  // Speculative decoding (model/speculative.h; the output is the same either way): a number of
  // tokens to guess per step (0: off), true (the server's --speculative), or absent (that for
  // greedy requests, off for sampled ones). Scheduler::admit resolves the markers.
  g.speculative = kSpeculativeDefault;
  if (auto it = body.find("speculative"); it != body.end() && !it->is_null()) {
    if (it->is_boolean())
      g.speculative = it->get<bool>() ? kSpeculativeOn : 0;
    else
      g.speculative = static_cast<int>(number(body, "speculative", 0, 0, 64));
  }
  // llama-server's per-request adapters: [{"id": N, "scale": S}, ...].
  if (auto lora = body.find("lora"); lora != body.end() && !lora->is_null()) {
    if (!lora->is_array())
      throw ApiError(400, "'lora' must be a list of {\"id\", \"scale\"} objects", "lora");
    job.lora.emplace();
    for (const json& item : *lora) {
      if (!item.is_object() || !item.contains("id") || !item["id"].is_number_integer() ||
          !item.contains("scale") || !item["scale"].is_number())
        throw ApiError(400, "each 'lora' entry needs an integer 'id' and a number 'scale'", "lora");
      const double scale = item["scale"].get<double>();
      if (!std::isfinite(scale) || std::fabs(scale) > 1e6)
        throw ApiError(400, "a 'lora' scale must be a finite number", "lora");
      const int64_t id = item["id"].get<int64_t>();
      if (id < 0 || id > (1 << 20))
        throw ApiError(400, "lora id " + std::to_string(id) + " does not exist", "lora",
                       "invalid_request_error", "invalid_value");
      job.lora->emplace_back(static_cast<int>(id), static_cast<float>(scale));
    }
  }
  const double n = number(body, "n", 1, 0, 1e9);
  if (n != 1) throw ApiError(400, "only n = 1 is supported", "n");

  auto stop = body.find("stop");
  if (stop != body.end() && !stop->is_null()) {
    if (stop->is_string()) {
      g.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& x : *stop) {
        if (!x.is_string())
          throw ApiError(400, "'stop' must be a string or a list of strings", "stop");
        g.stop.push_back(x.get<std::string>());
      }
    } else {
      throw ApiError(400, "'stop' must be a string or a list of strings", "stop");
    }
  }

  // logprobs: a boolean (chat, with top_logprobs 0-20) or a count 0-5 (completions: the
  // chosen token's log-probability always, plus that many alternatives).
  auto logprobs = body.find("logprobs");
  if (logprobs != body.end() && !logprobs->is_null()) {
    if (endpoint == Endpoint::kChat) {
      out.logprobs = boolean(body, "logprobs", false);
    } else if (logprobs->is_boolean()) {
      out.logprobs = logprobs->get<bool>();
      if (out.logprobs) g.top_logprobs = 0;
    } else {
      g.top_logprobs = static_cast<int>(number(body, "logprobs", 0, 0, 5));
      out.logprobs = true;
    }
  }
  if (endpoint == Endpoint::kChat) {
    auto top = body.find("top_logprobs");
    if (top != body.end() && !top->is_null()) {
      const int n = static_cast<int>(number(body, "top_logprobs", 0, 0, 20));
      if (!out.logprobs)  // as OpenAI answers: the alternatives come with logprobs only
        throw ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
      g.top_logprobs = n;
    } else if (out.logprobs) {
      g.top_logprobs = 0;
    }
  }

  out.stream = boolean(body, "stream", ollama);  // Ollama streams unless told not to
  auto options = body.find("stream_options");
  if (options != body.end() && !options->is_null()) {
    if (!options->is_object())
      throw ApiError(400, "'stream_options' must be an object", "stream_options");
    if (!out.stream)  // as OpenAI answers
      throw ApiError(400, "'stream_options' is only allowed with 'stream': true", "stream_options");
    out.include_usage = boolean(*options, "include_usage", false);
  }
  return out;
}

}  // namespace

}  // namespace ember::server
