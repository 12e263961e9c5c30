#include "server/responses/responses_api.h"

#include <ctime>
#include <optional>
#include <random>

#include "model/chat/chat_output.h"
#include "server/app.h"
#include "server/json_text.h"

namespace ember::server::responses {
namespace {

using json = nlohmann::ordered_json;

// Ids as OpenAI writes them: a prefix and 32 lower-case letters and digits.
std::string item_id(const char* prefix) {
  return random_id(prefix, 32, "abcdefghijklmnopqrstuvwxyz0123456789");
}

// A message item's content: a string, or input_text / output_text parts.
std::string content_text(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    throw ApiError(400, where + ".content must be a string or a list", "input");
  std::string text;
  for (const json& part : content) {
    const json type = part.is_object() ? part.value("type", json()) : json();
    if ((type == "input_text" || type == "output_text" || type == "text") &&
        part.contains("text") && part["text"].is_string()) {
      text += part["text"].get<std::string>();
    } else if (type == "input_image" || type == "input_file" || type == "input_audio") {
      throw ApiError(400,
                     where + " has an '" + type.get<std::string>() +
                         "' part, but ember serves text-only models",
                     "input", "invalid_request_error", "unsupported_content");
    } else {
      throw ApiError(400, where + ": content parts must be input_text or output_text", "input");
    }
  }
  return text;
}

json chat_messages(const json& input) {
  json out = json::array();
  if (input.is_string()) {
    out.push_back({{"role", "user"}, {"content", input}});
    return out;
  }
  if (!input.is_array() || input.empty())
    throw ApiError(400, "'input' must be a string or a non-empty list of items", "input");
  for (size_t i = 0; i < input.size(); ++i) {
    const json& item = input[i];
    const std::string where = "input[" + std::to_string(i) + "]";
    if (!item.is_object()) throw ApiError(400, where + " must be an object", "input");
    const json type = item.value("type", json("message"));
    if (type == "message") {
      const json role = item.value("role", json());
      if (role != "user" && role != "assistant" && role != "system" && role != "developer")
        throw ApiError(400, where + ".role must be user, assistant, system or developer", "input");
      out.push_back({{"role", role == "developer" ? json("system") : role},
                     {"content", content_text(item.value("content", json("")), where)}});
    } else if (type == "function_call") {
      if (!item.contains("call_id") || !item["call_id"].is_string() || !item.contains("name") ||
          !item["name"].is_string())
        throw ApiError(400, where + ": a function_call needs 'call_id' and 'name'", "input");
      json call = {{"id", item["call_id"]},
                   {"type", "function"},
                   {"function",
                    {{"name", item["name"]}, {"arguments", item.value("arguments", json("{}"))}}}};
      // Calls next to each other belong to one assistant turn.
      if (!out.empty() && out.back()["role"] == "assistant" && out.back().contains("tool_calls"))
        out.back()["tool_calls"].push_back(call);
      else
        out.push_back(
            {{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({call})}});
    } else if (type == "function_call_output") {
      if (!item.contains("call_id") || !item["call_id"].is_string())
        throw ApiError(400, where + ": a function_call_output needs 'call_id'", "input");
      const json output = item.value("output", json(""));
      out.push_back({{"role", "tool"},
                     {"tool_call_id", item["call_id"]},
                     {"content", output.is_string() ? output.get<std::string>()
                                                    : content_text(output, where)}});
    } else if (type == "reasoning") {
      // Earlier reasoning is not shown to the model again.
    } else if (type == "item_reference") {
      throw ApiError(400, where + ": ember's Responses API is stateless: send the items themselves",
                     "input", "invalid_request_error", "unsupported_parameter");
    } else {
      throw ApiError(400, where + ": items of type " + type.dump() + " are not supported", "input",
                     "invalid_request_error", "unsupported_parameter");
    }
  }
  return out;
}

// Streams or collects a Response: output items in the order the model wrote them.
class ResponsesSink : public JobSink {
 public:
  ResponsesSink(std::shared_ptr<http::Responder> responder, const ParsedRequest& request, json body)
      : responder_(std::move(responder)),
        stream_(request.stream),
        model_(request.job.model),
        body_(std::move(body)),
        id_(item_id("resp_")),
        created_(static_cast<int64_t>(std::time(nullptr))) {}

  bool cancelled() const override { return responder_->closed(); }

  void on_start(const Start& start) override {
    model_ = start.model_id;
    if (stream_) {
      responder_->start_stream(200, "text/event-stream");
      streaming_ = true;
      json r = response("in_progress");
      event({{"type", "response.created"}, {"response", r}});
      event({{"type", "response.in_progress"}, {"response", r}});
    }
    output_.emplace(start.output);
    collect(output_->push(start.output_prefix));
  }

  void on_text(const std::string& text, std::vector<TokenInfo>) override {
    collect(output_->push(text));
  }

  void on_done(const model::GenerateResult& r) override {
    collect(output_->finish());
    cut_ = r.finish_reason == "length";  // the item being written ends incomplete
    close_item();
    usage_ = {{"input_tokens", r.prompt_tokens},
              {"input_tokens_details", {{"cached_tokens", 0}}},
              {"output_tokens", r.completion_tokens},
              {"output_tokens_details", {{"reasoning_tokens", 0}}},
              {"total_tokens", r.prompt_tokens + r.completion_tokens}};
    const bool cut = r.finish_reason == "length";
    json final = response(cut ? "incomplete" : "completed");
    if (cut) final["incomplete_details"] = {{"reason", "max_output_tokens"}};
    responder_->log_field("model=" + model_);
    responder_->log_field("prompt_tokens=" + std::to_string(r.prompt_tokens));
    responder_->log_field("completion_tokens=" + std::to_string(r.completion_tokens));
    if (streaming_) {
      event({{"type", cut ? "response.incomplete" : "response.completed"}, {"response", final}});
      responder_->end();
      return;
    }
    http::Response out;
    out.body = dump(final);
    responder_->send(std::move(out));
  }

  void on_error(int status, const std::string& message, const std::string& code) override {
    const std::string type = status >= 500 ? "server_error" : "invalid_request_error";
    if (streaming_) {
      event({{"type", "error"},
             {"code", code.empty() ? json() : json(code)},
             {"message", message},
             {"param", nullptr}});
      responder_->end();
      return;
    }
    http::Response out;
    out.status = status;
    if (status == 503) out.headers.emplace_back("Retry-After", "1");
    out.body = error_body(status, message, type, status == 404 ? "model" : "", code);
    responder_->send(std::move(out));
  }

 private:
  json response(const char* status) const {
    json r = {{"id", id_},
              {"object", "response"},
              {"created_at", created_},
              {"status", status},
              {"error", nullptr},
              {"incomplete_details", nullptr},
              {"instructions", body_.value("instructions", json())},
              {"max_output_tokens", body_.value("max_output_tokens", json())},
              {"model", model_},
              {"output", output_items_},
              {"parallel_tool_calls", body_.value("parallel_tool_calls", json(true))},
              {"previous_response_id", nullptr},
              {"reasoning", {{"effort", nullptr}, {"summary", nullptr}}},
              {"store", false},  // stateless
              {"temperature", body_.value("temperature", json(1.0))},
              {"text", body_.value("text", json{{"format", {{"type", "text"}}}})},
              {"tool_choice", body_.value("tool_choice", json("auto"))},
              {"tools", body_.value("tools", json::array())},
              {"top_p", body_.value("top_p", json(1.0))},
              {"truncation", "disabled"},
              {"usage", usage_},
              {"metadata", body_.value("metadata", json::object())}};
    return r;
  }

  void event(json e) {
    e["sequence_number"] = sequence_++;
    responder_->write("event: " + e["type"].get<std::string>() + "\ndata: " + dump(e) + "\n\n");
  }

  json& item() { return output_items_.back(); }
  int index() const { return static_cast<int>(output_items_.size()) - 1; }

  // Opens an output item of `type` unless the last one is of it and still open.
  void open_item(const std::string& type, json fresh) {
    if (open_ && item()["type"] == type && type != "function_call") return;
    close_item();
    output_items_.push_back(fresh);
    open_ = true;
    if (!streaming_) return;
    json added = fresh;  // as the API sends it: no content and no arguments yet
    added["status"] = "in_progress";
    if (type == "message") added["content"] = json::array();
    if (type == "function_call") added["arguments"] = "";
    event({{"type", "response.output_item.added"}, {"output_index", index()}, {"item", added}});
    if (type == "message")
      event({{"type", "response.content_part.added"},
             {"item_id", fresh["id"]},
             {"output_index", index()},
             {"content_index", 0},
             {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
  }

  void close_item() {
    if (!open_) return;
    open_ = false;
    json& it = item();
    if (it.contains("status")) it["status"] = cut_ ? "incomplete" : "completed";
    if (!streaming_) return;
    const json id = it["id"];
    if (it["type"] == "message") {
      const json part = it["content"][0];
      event({{"type", "response.output_text.done"},
             {"item_id", id},
             {"output_index", index()},
             {"content_index", 0},
             {"text", part["text"]},
             {"logprobs", json::array()}});
      event({{"type", "response.content_part.done"},
             {"item_id", id},
             {"output_index", index()},
             {"content_index", 0},
             {"part", part}});
    } else if (it["type"] == "function_call") {
      event({{"type", "response.function_call_arguments.done"},
             {"item_id", id},
             {"output_index", index()},
             {"arguments", it["arguments"]}});
    } else if (it["type"] == "reasoning") {
      event({{"type", "response.reasoning_text.done"},
             {"item_id", id},
             {"output_index", index()},
             {"content_index", 0},
             {"text", it["content"][0]["text"]}});
    }
    event({{"type", "response.output_item.done"}, {"output_index", index()}, {"item", it}});
  }

  static void append(json& field, const std::string& text) {
    field = field.get<std::string>() + text;
  }

  void collect(const std::vector<chat::ChatDelta>& deltas) {
    for (const chat::ChatDelta& d : deltas) {
      switch (d.kind) {
        case chat::ChatDelta::kContent:
          open_item("message", {{"id", item_id("msg_")},
                                {"type", "message"},
                                {"status", "completed"},
                                {"role", "assistant"},
                                {"content", json::array({{{"type", "output_text"},
                                                          {"text", ""},
                                                          {"annotations", json::array()}}})}});
          append(item()["content"][0]["text"], d.text);
          if (streaming_)
            event({{"type", "response.output_text.delta"},
                   {"item_id", item()["id"]},
                   {"output_index", index()},
                   {"content_index", 0},
                   {"delta", d.text},
                   {"logprobs", json::array()}});
          break;
        case chat::ChatDelta::kReasoning:
          open_item("reasoning",
                    {{"id", item_id("rs_")},
                     {"type", "reasoning"},
                     {"summary", json::array()},
                     {"content", json::array({{{"type", "reasoning_text"}, {"text", ""}}})}});
          append(item()["content"][0]["text"], d.text);
          if (streaming_)
            event({{"type", "response.reasoning_text.delta"},
                   {"item_id", item()["id"]},
                   {"output_index", index()},
                   {"content_index", 0},
                   {"delta", d.text}});
          break;
        case chat::ChatDelta::kToolCall:
          open_item("function_call", {{"id", item_id("fc_")},
                                      {"type", "function_call"},
                                      {"status", "completed"},
                                      {"arguments", ""},
                                      {"call_id", d.id},
                                      {"name", d.name}});
          [[fallthrough]];  // its first arguments, if any, as a delta
        case chat::ChatDelta::kToolArguments:
          if (!open_ || item()["type"] != "function_call" || d.text.empty()) break;
          append(item()["arguments"], d.text);
          if (streaming_)
            event({{"type", "response.function_call_arguments.delta"},
                   {"item_id", item()["id"]},
                   {"output_index", index()},
                   {"delta", d.text}});
          break;
      }
    }
  }

  std::shared_ptr<http::Responder> responder_;
  bool stream_;
  std::string model_;
  json body_;
  std::string id_;
  int64_t created_;
  bool streaming_ = false, open_ = false, cut_ = false;
  int sequence_ = 0;
  std::optional<chat::ChatOutputParser> output_;
  json output_items_ = json::array();
  json usage_ = nullptr;
};

}  // namespace

json to_chat_body(const json& b) {
  if (!b.is_object()) throw ApiError(400, "the body must be a JSON object");
  if (b.contains("previous_response_id") && !b["previous_response_id"].is_null())
    throw ApiError(400,
                   "'previous_response_id' cannot be honoured: ember's Responses API is stateless "
                   "(nothing is stored); send the conversation in 'input'",
                   "previous_response_id", "invalid_request_error", "unsupported_parameter");
  // Fields whose request ember cannot honour: a 400 naming them, not a silently different answer.
  auto given = [&](const char* key) {
    auto it = b.find(key);
    return it != b.end() && !it->is_null() && *it != false && *it != 0 &&
           !(it->is_array() && it->empty()) && !(it->is_object() && it->empty());
  };
  for (const char* key : {"background", "conversation", "prompt", "include", "top_logprobs"})
    if (given(key))
      throw ApiError(400,
                     std::string("'") + key +
                         "' cannot be honoured: ember's Responses API is stateless and returns "
                         "text, function calls and reasoning only",
                     key, "invalid_request_error", "unsupported_parameter");
  json out = json::object();
  for (const char* key : {"model", "temperature", "top_p", "stream", "parallel_tool_calls", "seed"})
    if (b.contains(key) && !b[key].is_null()) out[key] = b[key];
  if (b.contains("max_output_tokens") && !b["max_output_tokens"].is_null())
    out["max_tokens"] = b["max_output_tokens"];
  json messages = chat_messages(b.value("input", json()));
  if (auto ins = b.find("instructions"); ins != b.end() && !ins->is_null()) {
    if (!ins->is_string()) throw ApiError(400, "'instructions' must be a string", "instructions");
    messages.insert(messages.begin(), json{{"role", "system"}, {"content", *ins}});
  }
  out["messages"] = messages;
  if (auto tools = b.find("tools"); tools != b.end() && !tools->is_null()) {
    if (!tools->is_array()) throw ApiError(400, "'tools' must be a list", "tools");
    json list = json::array();
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string at = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || t.value("type", json()) != "function")
        throw ApiError(400, at + ": only function tools are supported", "tools",
                       "invalid_request_error", "unsupported_parameter");
      if (!t.contains("name") || !t["name"].is_string())
        throw ApiError(400, at + " needs a 'name'", "tools");
      json f = {{"name", t["name"]}};
      for (const char* key : {"description", "parameters"})
        if (t.contains(key) && !t[key].is_null()) f[key] = t[key];
      list.push_back({{"type", "function"}, {"function", f}});
    }
    out["tools"] = list;
  }
  if (auto tc = b.find("tool_choice"); tc != b.end() && !tc->is_null()) {
    if (tc->is_object() && tc->value("type", json()) == "function" && tc->contains("name"))
      out["tool_choice"] = {{"type", "function"}, {"function", {{"name", (*tc)["name"]}}}};
    else
      out["tool_choice"] = *tc;  // "auto", "none", "required" (others: a 400 from api_request)
  }
  if (auto text = b.find("text");
      text != b.end() && text->is_object() && text->contains("format")) {
    const json& f = (*text)["format"];
    const json type = f.is_object() ? f.value("type", json()) : json();
    if (type == "json_schema") {
      if (!f.contains("schema")) throw ApiError(400, "'text.format.schema' is required", "text");
      out["response_format"] = {
          {"type", "json_schema"},
          {"json_schema", {{"name", f.value("name", json("output"))}, {"schema", f["schema"]}}}};
    } else if (type == "json_object") {
      out["response_format"] = {{"type", "json_object"}};
    } else if (type != "text") {
      throw ApiError(400, "'text.format.type' must be text, json_object or json_schema", "text");
    }
  }
  return out;
}

std::shared_ptr<JobSink> make_sink(std::shared_ptr<http::Responder> responder,
                                   const ParsedRequest& request, json body) {
  return std::make_shared<ResponsesSink>(std::move(responder), request, std::move(body));
}

}  // namespace ember::server::responses
