#include "server/anthropic/anthropic_api.h"

#include <optional>
#include <random>

#include "model/chat/chat_output.h"
#include "server/json_text.h"

namespace ember::server::anthropic {
namespace {

using json = nlohmann::ordered_json;

ApiError bad(const std::string& message, const std::string& param = "") {
  return ApiError(400, message, param);
}

// The text of a content value: a string, or text blocks (others refused by the caller).
std::string text_of(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw bad(where + ": content must be a string or a list of blocks");
  std::string text;
  for (const json& block : content) {
    if (!block.is_object() || block.value("type", json()) != "text" || !block.contains("text") ||
        !block["text"].is_string())
      throw bad(where + ": only text blocks are allowed here");
    text += block["text"].get<std::string>();
  }
  return text;
}

// Messages → OpenAI chat messages: text blocks joined, tool_use blocks as tool_calls,
// tool_result blocks as role "tool" messages ahead of the user's text.
json chat_messages(const json& messages) {
  if (!messages.is_array() || messages.empty())
    throw bad("messages: a non-empty list is required", "messages");
  json out = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = "messages." + std::to_string(i);
    if (!m.is_object()) throw bad(where + ": must be an object", "messages");
    const json role = m.value("role", json());
    if (role != "user" && role != "assistant")
      throw bad(where + ".role: must be \"user\" or \"assistant\"", "messages");
    if (!m.contains("content")) throw bad(where + ".content: Field required", "messages");
    const json& content = m["content"];
    std::string text;
    json calls = json::array();
    if (content.is_string()) {
      text = content.get<std::string>();
    } else if (content.is_array()) {
      for (size_t b = 0; b < content.size(); ++b) {
        const json& block = content[b];
        const std::string at = where + ".content." + std::to_string(b);
        if (!block.is_object() || !block.contains("type") || !block["type"].is_string())
          throw bad(at + ": a block needs a 'type'", "messages");
        const std::string type = block["type"].get<std::string>();
        if (type == "text") {
          if (!block.contains("text") || !block["text"].is_string())
            throw bad(at + ".text: Field required", "messages");
          text += block["text"].get<std::string>();
        } else if (type == "tool_use" && role == "assistant") {
          if (!block.contains("id") || !block["id"].is_string() || !block.contains("name") ||
              !block["name"].is_string() || !block.contains("input") || !block["input"].is_object())
            throw bad(at + ": a tool_use block needs 'id', 'name' and an 'input' object",
                      "messages");
          calls.push_back({{"id", block["id"]},
                           {"type", "function"},
                           {"function", {{"name", block["name"]}, {"arguments", block["input"]}}}});
        } else if (type == "tool_result" && role == "user") {
          if (!block.contains("tool_use_id") || !block["tool_use_id"].is_string())
            throw bad(at + ".tool_use_id: Field required", "messages");
          std::string result = block.contains("content") ? text_of(block["content"], at) : "";
          if (block.value("is_error", json(false)) == true) result = "Error: " + result;
          out.push_back(
              {{"role", "tool"}, {"tool_call_id", block["tool_use_id"]}, {"content", result}});
        } else if ((type == "thinking" || type == "redacted_thinking") && role == "assistant") {
          // Earlier reasoning is not shown to the model again.
        } else if (type == "image" || type == "document") {
          throw ApiError(
              400, at + ": '" + type + "' blocks cannot be honoured: ember serves text-only models",
              "messages", "invalid_request_error", "unsupported_content");
        } else {
          throw bad(at + ": a '" + type + "' block is not allowed in a " + role.get<std::string>() +
                        " message",
                    "messages");
        }
      }
    } else {
      throw bad(where + ".content: must be a string or a list of blocks", "messages");
    }
    if (role == "assistant") {
      json msg = {{"role", "assistant"}, {"content", text}};
      if (!calls.empty()) msg["tool_calls"] = calls;
      out.push_back(std::move(msg));
    } else if (!text.empty() || content.is_string()) {
      out.push_back({{"role", "user"}, {"content", text}});
    }
  }
  return out;
}

// Streams or collects one answer as a Message: content blocks (text, thinking, tool_use) in
// the order the model wrote them.
class MessagesSink : public JobSink {
 public:
  MessagesSink(std::shared_ptr<http::Responder> responder, const ParsedRequest& request, bool count,
               bool thinking)
      : responder_(std::move(responder)),
        stream_(request.stream && !count),
        count_(count),
        thinking_(thinking),
        model_(request.job.model),
        id_(random_id("msg_", 24)) {}

  bool cancelled() const override { return responder_->closed(); }

  void on_start(const Start& start) override {
    model_ = start.model_id;
    input_tokens_ = start.prompt_tokens;
    if (count_) return;
    if (stream_) {
      responder_->start_stream(200, "text/event-stream");
      streaming_ = true;
      json message = base();
      message["usage"] = {{"input_tokens", input_tokens_}, {"output_tokens", 0}};
      event("message_start", {{"type", "message_start"}, {"message", message}});
      event("ping", {{"type", "ping"}});
    }
    output_.emplace(start.output);
    collect(output_->push(start.output_prefix));
  }

  void on_text(const std::string& text, std::vector<TokenInfo>) override {
    collect(output_->push(text));
  }

  void on_done(const model::GenerateResult& r) override {
    http::Response out;
    if (count_) {
      out.body = dump(json{{"input_tokens", r.prompt_tokens}});
      return responder_->send(std::move(out));
    }
    collect(output_->finish());
    close_block();
    const bool tools = std::any_of(blocks_.begin(), blocks_.end(),
                                   [](const json& b) { return b["type"] == "tool_use"; });
    const char* stop_reason = r.finish_reason == "length" ? "max_tokens"
                              : tools                     ? "tool_use"
                              : !r.stop_sequence.empty()  ? "stop_sequence"
                                                          : "end_turn";
    const json stop_sequence = r.stop_sequence.empty() ? json() : json(r.stop_sequence);
    responder_->log_field("model=" + model_);
    responder_->log_field("prompt_tokens=" + std::to_string(r.prompt_tokens));
    responder_->log_field("completion_tokens=" + std::to_string(r.completion_tokens));
    if (streaming_) {
      event("message_delta",
            {{"type", "message_delta"},
             {"delta", {{"stop_reason", stop_reason}, {"stop_sequence", stop_sequence}}},
             {"usage", {{"output_tokens", r.completion_tokens}}}});
      event("message_stop", {{"type", "message_stop"}});
      responder_->end();
      return;
    }
    json message = base();
    for (json& b : blocks_)
      if (b["type"] == "tool_use") {  // the arguments written as text become the input object
        json input = json::parse(b["input_text"].get<std::string>(), nullptr, false);
        b["input"] = input.is_object() ? input : json::object();
        b.erase("input_text");
      }
    message["content"] = blocks_;
    message["stop_reason"] = stop_reason;
    message["stop_sequence"] = stop_sequence;
    message["usage"] = {{"input_tokens", r.prompt_tokens}, {"output_tokens", r.completion_tokens}};
    out.body = dump(message);
    responder_->send(std::move(out));
  }

  void on_error(int status, const std::string& message, const std::string&) override {
    if (streaming_) {
      event("error", json::parse(error_body(status, message)));
      responder_->end();
      return;
    }
    http::Response out;
    out.status = status == 503 ? 529 : status;  // Anthropic's "overloaded"
    if (status == 503) out.headers.emplace_back("Retry-After", "1");
    out.body = error_body(status, message);
    responder_->send(std::move(out));
  }

 private:
  json base() const {
    return {{"id", id_},
            {"type", "message"},
            {"role", "assistant"},
            {"model", model_},
            {"content", json::array()},
            {"stop_reason", nullptr},
            {"stop_sequence", nullptr}};
  }

  void event(const char* name, const json& data) {
    responder_->write(std::string("event: ") + name + "\ndata: " + dump(data) + "\n\n");
  }

  // Opens a block of `type` unless the last one is of it and still open.
  void open_block(const std::string& type, json block) {
    if (open_ && blocks_.back()["type"] == type && type != "tool_use") return;
    close_block();
    blocks_.push_back(block);
    open_ = true;
    if (!streaming_) return;
    if (type == "tool_use") block.erase("input_text");
    event(
        "content_block_start",
        {{"type", "content_block_start"}, {"index", blocks_.size() - 1}, {"content_block", block}});
  }

  void close_block() {
    if (!open_) return;
    open_ = false;
    if (streaming_)
      event("content_block_stop", {{"type", "content_block_stop"}, {"index", blocks_.size() - 1}});
  }

  void delta(const json& d) {
    if (streaming_)
      event("content_block_delta",
            {{"type", "content_block_delta"}, {"index", blocks_.size() - 1}, {"delta", d}});
  }

  void collect(const std::vector<chat::ChatDelta>& deltas) {
    for (const chat::ChatDelta& d : deltas) {
      switch (d.kind) {
        case chat::ChatDelta::kContent:
          open_block("text", {{"type", "text"}, {"text", ""}});
          blocks_.back()["text"] = blocks_.back()["text"].get<std::string>() + d.text;
          delta({{"type", "text_delta"}, {"text", d.text}});
          break;
        case chat::ChatDelta::kReasoning:
          if (!thinking_) break;  // not asked for: not shown, as Anthropic's API does
          open_block("thinking", {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
          blocks_.back()["thinking"] = blocks_.back()["thinking"].get<std::string>() + d.text;
          delta({{"type", "thinking_delta"}, {"thinking", d.text}});
          break;
        case chat::ChatDelta::kToolCall:
          open_block("tool_use", {{"type", "tool_use"},
                                  {"id", "toolu_" + d.id.substr(d.id.rfind('_') + 1)},
                                  {"name", d.name},
                                  {"input", json::object()},
                                  {"input_text", d.text}});
          if (!d.text.empty()) delta({{"type", "input_json_delta"}, {"partial_json", d.text}});
          break;
        case chat::ChatDelta::kToolArguments:
          if (!open_ || blocks_.back()["type"] != "tool_use") break;  // (no call open: none)
          blocks_.back()["input_text"] = blocks_.back()["input_text"].get<std::string>() + d.text;
          delta({{"type", "input_json_delta"}, {"partial_json", d.text}});
          break;
      }
    }
  }

  std::shared_ptr<http::Responder> responder_;
  bool stream_, count_, thinking_;
  std::string model_, id_;
  int input_tokens_ = 0;
  bool streaming_ = false, open_ = false;
  std::optional<chat::ChatOutputParser> output_;
  json blocks_ = json::array();
};

}  // namespace

bool thinking_requested(const json& body) {
  auto th = body.find("thinking");
  if (th == body.end() || !th->is_object()) return false;
  const json type = th->value("type", json());
  return type == "enabled" || type == "adaptive";
}

json to_chat_body(const json& b, bool count) {
  if (!b.is_object()) throw bad("the body must be a JSON object");
  for (const char* key : {"mcp_servers", "container"})  // server-side tools ember does not run
    if (auto it = b.find(key); it != b.end() && !it->is_null() && !(it->is_array() && it->empty()))
      throw ApiError(400, std::string(key) + ": not supported (ember runs no server-side tools)",
                     key, "invalid_request_error", "unsupported_parameter");
  json out = json::object();
  if (b.contains("model")) out["model"] = b["model"];
  if (!count) {
    if (!b.contains("max_tokens") || !b["max_tokens"].is_number_integer() ||
        b["max_tokens"].get<int64_t>() < 0)
      throw bad("max_tokens: Field required (an integer, 0 or more)", "max_tokens");
    out["max_tokens"] = b["max_tokens"];
  }
  if (auto t = b.find("temperature"); t != b.end() && !t->is_null()) {
    if (!t->is_number() || t->get<double>() < 0 || t->get<double>() > 1)
      throw bad("temperature: must be between 0 and 1", "temperature");
    out["temperature"] = *t;
  }
  for (const char* key : {"top_p", "top_k", "stream"})
    if (b.contains(key) && !b[key].is_null()) out[key] = b[key];
  if (auto s = b.find("stop_sequences"); s != b.end() && !s->is_null()) {
    if (!s->is_array()) throw bad("stop_sequences: must be a list of strings", "stop_sequences");
    out["stop"] = *s;
  }
  json messages = chat_messages(b.value("messages", json()));
  if (auto sys = b.find("system"); sys != b.end() && !sys->is_null())
    messages.insert(messages.begin(),
                    json{{"role", "system"}, {"content", text_of(*sys, "system")}});
  out["messages"] = messages;
  if (auto tools = b.find("tools"); tools != b.end() && !tools->is_null()) {
    if (!tools->is_array()) throw bad("tools: must be a list", "tools");
    json list = json::array();
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string at = "tools." + std::to_string(i);
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
        throw bad(at + ".name: Field required", "tools");
      if (t.contains("type") && !t["type"].is_null() && t["type"] != "custom")
        throw ApiError(
            400,
            at + ": server tools ('" + t["type"].dump() + "') are not supported; send custom tools",
            "tools", "invalid_request_error", "unsupported_parameter");
      if (!t.contains("input_schema") || !t["input_schema"].is_object())
        throw bad(at + ".input_schema: Field required", "tools");
      json f = {{"name", t["name"]}, {"parameters", t["input_schema"]}};
      if (t.contains("description")) f["description"] = t["description"];
      list.push_back({{"type", "function"}, {"function", f}});
    }
    out["tools"] = list;
  }
  if (auto tc = b.find("tool_choice"); tc != b.end() && !tc->is_null()) {
    if (!tc->is_object() || !tc->contains("type") || !(*tc)["type"].is_string())
      throw bad("tool_choice: must be {\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}",
                "tool_choice");
    const std::string type = (*tc)["type"].get<std::string>();
    if (type == "auto" || type == "none") {
      out["tool_choice"] = type;
    } else if (type == "any") {
      out["tool_choice"] = "required";
    } else if (type == "tool") {
      if (!tc->contains("name") || !(*tc)["name"].is_string())
        throw bad("tool_choice.name: Field required", "tool_choice");
      out["tool_choice"] = {{"type", "function"}, {"function", {{"name", (*tc)["name"]}}}};
    } else {
      throw bad("tool_choice.type: must be auto, any, tool or none", "tool_choice");
    }
    if (tc->value("disable_parallel_tool_use", json(false)) == true)
      out["parallel_tool_calls"] = false;
  }
  // output_config.format: structured output ({"type": "json_schema", "schema"}); effort is
  // a hint for Anthropic's models that ember's have no use for.
  if (auto oc = b.find("output_config"); oc != b.end() && oc->is_object())
    if (auto f = oc->find("format"); f != oc->end() && !f->is_null()) {
      if (!f->is_object() || f->value("type", json()) != "json_schema" || !f->contains("schema"))
        throw bad("output_config.format: must be {\"type\": \"json_schema\", \"schema\": {...}}",
                  "output_config");
      out["response_format"] = {{"type", "json_schema"},
                                {"json_schema", {{"name", "output"}, {"schema", (*f)["schema"]}}}};
    }
  // Thinking only when asked for, as Anthropic's models do: templates that think by default
  // (Qwen 3) are told not to.
  out["chat_template_kwargs"] = {{"enable_thinking", thinking_requested(b)}};
  return out;
}

std::shared_ptr<JobSink> make_sink(std::shared_ptr<http::Responder> responder,
                                   const ParsedRequest& request, bool count, bool thinking) {
  return std::make_shared<MessagesSink>(std::move(responder), request, count, thinking);
}

std::string error_body(int status, const std::string& message) {
  const char* type = status == 401   ? "authentication_error"
                     : status == 403 ? "permission_error"
                     : status == 404 ? "not_found_error"
                     : status == 413 ? "request_too_large"
                     : status == 429 ? "rate_limit_error"
                     : status == 503 ? "overloaded_error"
                     : status >= 500 ? "api_error"
                                     : "invalid_request_error";
  return dump(json{{"type", "error"}, {"error", {{"type", type}, {"message", message}}}});
}

}  // namespace ember::server::anthropic
