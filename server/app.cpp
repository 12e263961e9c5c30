#include "server/app.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "model/text/utf8.h"
#include "server/anthropic/anthropic_api.h"
#include "server/api_request.h"
#include "server/embeddings/embeddings_api.h"
#include "server/json_text.h"
#include "server/ollama/ollama_api.h"
#include "server/responses/responses_api.h"
#include "server/ui/ui_page.h"
#include "server/version.h"

namespace ember::server {
namespace {

using json = nlohmann::ordered_json;

int64_t unix_now() {
  return static_cast<int64_t>(std::time(nullptr));
}

uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

// Constant-time comparison: the time taken does not reveal how much of a guess was right.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::string& longer = a.size() >= b.size() ? a : b;
  for (size_t i = 0; i < longer.size(); ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

json usage_of(int prompt, int completion) {
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

json bytes_of(const std::string& s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(c);
  return out;
}

// Streams or collects one generation and answers in the shape of its endpoint.
class GenerationSink : public JobSink {
 public:
  GenerationSink(std::shared_ptr<http::Responder> responder, Endpoint endpoint,
                 ParsedRequest parsed)
      : responder_(std::move(responder)),
        endpoint_(endpoint),
        stream_(parsed.stream),
        include_usage_(parsed.include_usage),
        logprobs_(parsed.logprobs),
        id_(random_id(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-", 16, "0123456789abcdef")),
        created_(unix_now()),
        model_(parsed.job.model),
        text_offset_(static_cast<int>(text::utf8::count_chars(parsed.job.prompt))) {}

  bool cancelled() const override { return responder_->closed(); }

  void on_start(const Start& start) override {
    model_ = start.model_id;
    cached_tokens_ = start.cached_tokens;
    if (stream_) {
      responder_->start_stream(200, "text/event-stream");
      started_ = true;
      if (endpoint_ == Endpoint::kChat)
        event(chunk(json{{"role", "assistant"}, {"content", ""}}, nullptr, json()));
    }
    if (endpoint_ == Endpoint::kChat) {
      output_.emplace(start.output);
      collect(output_->push(start.output_prefix), {});
    }
  }

  void on_text(const std::string& text, std::vector<TokenInfo> logprobs) override {
    if (endpoint_ == Endpoint::kChat) return collect(output_->push(text), std::move(logprobs));
    if (!stream_) {
      for (auto& t : logprobs) logprobs_seen_.push_back(std::move(t));
      return;
    }
    json lp = logprobs_ ? logprobs_json(logprobs) : json();
    if (endpoint_ == Endpoint::kShimmyGenerate) {
      event(json{{"response", text}});
    } else {
      event(chunk(text, nullptr, lp));
    }
  }

  void on_done(const model::GenerateResult& r) override {
    responder_->log_field("model=" + model_);
    responder_->log_field("prompt_tokens=" + std::to_string(r.prompt_tokens));
    responder_->log_field("completion_tokens=" + std::to_string(r.completion_tokens));
    responder_->log_field("finish=" + r.finish_reason);
    json usage = usage_of(r.prompt_tokens, r.completion_tokens);
    usage["prompt_tokens_details"] = {{"cached_tokens", cached_tokens_}};
    responder_->log_field("cached_tokens=" + std::to_string(cached_tokens_));
    std::string finish_reason = r.finish_reason;
    if (endpoint_ == Endpoint::kChat) {
      collect(output_->finish(), {});
      // As OpenAI: an answer that ends after its tool calls finishes with "tool_calls".
      if (!calls_.empty() && finish_reason == "stop") finish_reason = "tool_calls";
      if (!calls_.empty()) responder_->log_field("tool_calls=" + std::to_string(calls_.size()));
    }
    if (stream_) {
      if (endpoint_ == Endpoint::kChat) {
        // Logprobs of tokens whose text never made a delta (a held-back end) come last.
        json lp = logprobs_ && !logprobs_seen_.empty() ? logprobs_json(logprobs_seen_) : json();
        event(chunk(json::object(), finish_reason, lp));
      } else if (endpoint_ == Endpoint::kShimmyGenerate) {
        event(json{{"response", ""}, {"done", true}, {"finish_reason", r.finish_reason}});
      } else {
        event(chunk("", finish_reason, json()));
      }
      if (include_usage_ && endpoint_ != Endpoint::kShimmyGenerate) {
        json u = base(endpoint_ == Endpoint::kChat ? "chat.completion.chunk" : "text_completion");
        u["choices"] = json::array();
        u["usage"] = usage;
        event(u);
      }
      responder_->write("data: [DONE]\n\n");
      responder_->end();
      return;
    }
    http::Response out;
    if (endpoint_ == Endpoint::kShimmyGenerate) {
      out.body = dump(json{{"response", r.text}});
      responder_->send(std::move(out));
      return;
    }
    json lp = logprobs_ ? logprobs_json(logprobs_seen_) : json();
    json body;
    if (endpoint_ == Endpoint::kChat) {
      body = base("chat.completion");
      // As OpenAI: an answer of calls alone has null content (blanks before a call included).
      const bool blank = content_.find_first_not_of(" \t\r\n") == std::string::npos;
      json message = {{"role", "assistant"},
                      {"content", blank && !calls_.empty() ? json() : json(content_)}};
      if (!reasoning_.empty()) message["reasoning_content"] = message["reasoning"] = reasoning_;
      if (!calls_.empty()) message["tool_calls"] = calls_;
      body["choices"] = json::array({json{
          {"index", 0}, {"message", message}, {"logprobs", lp}, {"finish_reason", finish_reason}}});
    } else {
      body = base("text_completion");
      body["choices"] = json::array({json{
          {"text", r.text}, {"index", 0}, {"logprobs", lp}, {"finish_reason", finish_reason}}});
    }
    body["usage"] = usage;
    out.body = dump(body);
    responder_->send(std::move(out));
  }

  void on_error(int status, const std::string& message, const std::string& code) override {
    const std::string type = status >= 500   ? "server_error"
                             : status == 404 ? "not_found_error"
                                             : "invalid_request_error";
    const std::string param = status == 404 ? "model" : "";
    if (started_) {
      event(json::parse(error_body(status, message, type, param, code)));
      responder_->end();
      return;
    }
    http::Response out;
    out.status = status;
    if (status == 503) out.headers.emplace_back("Retry-After", "1");
    out.body = error_body(status, message, type, param, code);
    responder_->send(std::move(out));
  }

 private:
  // A chat answer's pieces: streamed as deltas (the token logprobs ride on the first chunk that
  // carries their text, or the next one when the parser held it back), or collected for the
  // message.
  void collect(std::vector<chat::ChatDelta> deltas, std::vector<TokenInfo> logprobs) {
    for (auto& t : logprobs) logprobs_seen_.push_back(std::move(t));
    for (chat::ChatDelta& d : deltas) {
      json delta;
      switch (d.kind) {
        case chat::ChatDelta::kContent:
          content_ += d.text;
          delta = {{"content", d.text}};
          break;
        case chat::ChatDelta::kReasoning:
          reasoning_ += d.text;
          delta = {{"reasoning_content", d.text}, {"reasoning", d.text}};
          break;
        case chat::ChatDelta::kToolCall:
          calls_.push_back({{"id", d.id},
                            {"type", "function"},
                            {"function", {{"name", d.name}, {"arguments", d.text}}}});
          delta = {{"tool_calls",
                    json::array({{{"index", d.index},
                                  {"id", d.id},
                                  {"type", "function"},
                                  {"function", {{"name", d.name}, {"arguments", d.text}}}}})}};
          break;
        case chat::ChatDelta::kToolArguments: {
          std::string& args = calls_[d.index]["function"]["arguments"].get_ref<std::string&>();
          args += d.text;
          delta = {{"tool_calls",
                    json::array({{{"index", d.index}, {"function", {{"arguments", d.text}}}}})}};
          break;
        }
      }
      if (!stream_) continue;
      json lp = logprobs_ && !logprobs_seen_.empty() ? logprobs_json(logprobs_seen_) : json();
      logprobs_seen_.clear();
      event(chunk(delta, nullptr, lp));
    }
  }

  json base(const char* object) const {
    return json{{"id", id_},
                {"object", object},
                {"created", created_},
                {"model", model_},
                {"system_fingerprint", "ember"}};
  }

  json chunk(const json& delta_or_text, const json& finish, const json& logprobs) const {
    json c = base(endpoint_ == Endpoint::kChat ? "chat.completion.chunk" : "text_completion");
    json choice = endpoint_ == Endpoint::kChat ? json{{"index", 0},
                                                      {"delta", delta_or_text},
                                                      {"logprobs", logprobs},
                                                      {"finish_reason", finish}}
                                               : json{{"text", delta_or_text},
                                                      {"index", 0},
                                                      {"logprobs", logprobs},
                                                      {"finish_reason", finish}};
    c["choices"] = json::array({choice});
    return c;
  }

  // Chat: {"content": [{token, logprob, bytes, top_logprobs}]}; completions: parallel lists.
  json logprobs_json(const std::vector<TokenInfo>& infos) const {
    if (endpoint_ == Endpoint::kChat) {
      json content = json::array();
      for (const TokenInfo& t : infos) {
        json top = json::array();
        for (const auto& [tok, lp] : t.top)
          top.push_back({{"token", tok}, {"logprob", lp}, {"bytes", bytes_of(tok)}});
        content.push_back({{"token", t.token},
                           {"logprob", t.logprob},
                           {"bytes", bytes_of(t.token)},
                           {"top_logprobs", top}});
      }
      return json{{"content", content}, {"refusal", nullptr}};
    }
    json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    for (const TokenInfo& t : infos) {
      tokens.push_back(t.token);
      lps.push_back(t.logprob);
      json top = json::object();
      for (const auto& [tok, lp] : t.top) top[tok] = lp;
      tops.push_back(top);
      offsets.push_back(text_offset_);
      text_offset_ += static_cast<int>(text::utf8::count_chars(t.token));
    }
    return json{{"tokens", tokens},
                {"token_logprobs", lps},
                {"top_logprobs", tops},
                {"text_offset", offsets}};
  }

  void event(const json& j) { responder_->write("data: " + dump(j) + "\n\n"); }

  std::shared_ptr<http::Responder> responder_;
  Endpoint endpoint_;
  bool stream_, include_usage_, logprobs_;
  std::string id_;
  int64_t created_;
  std::string model_;
  int cached_tokens_ = 0;
  bool started_ = false;
  std::vector<TokenInfo> logprobs_seen_;
  std::optional<chat::ChatOutputParser> output_;  // chat: reasoning and tool calls
  std::string content_, reasoning_;
  json calls_ = json::array();
  // Completions' logprobs.text_offset: characters from the start of the prompt (as OpenAI).
  mutable int text_offset_ = 0;
};

}  // namespace

std::string error_body(int status, const std::string& message, const std::string& type,
                       const std::string& param, const std::string& code) {
  std::string c = code;
  if (c.empty()) {
    switch (status) {
      case 401:
        c = "invalid_api_key";
        break;
      case 404:
        c = param == "model" ? "model_not_found" : "not_found";
        break;
      case 405:
        c = "method_not_allowed";
        break;
      case 409:
        c = "conflict";
        break;
      case 413:
        c = "request_too_large";
        break;
      case 429:
        c = "rate_limit_exceeded";
        break;
      case 503:
        c = "server_busy";
        break;
      default:
        c = status >= 500 ? "internal_error" : "invalid_request_error";
    }
  }
  return dump(json{{"error",
                    {{"message", message},
                     {"type", type},
                     {"param", param.empty() ? json() : json(param)},
                     {"code", c}}}});
}

App::App(ModelRegistry& registry, Scheduler& scheduler, pull::PullManager& pulls,
         AppOptions options)
    : registry_(registry), scheduler_(scheduler), pulls_(pulls), options_(std::move(options)) {}

void App::error(std::shared_ptr<http::Responder> responder, int status, const std::string& message,
                const std::string& type, const std::string& param, http::Headers headers,
                const std::string& code) {
  counters_->errors++;
  http::Response r;
  r.status = status;
  r.headers = std::move(headers);
  r.body = error_body(status, message, type, param, code);
  responder->send(std::move(r));
}

bool App::authorized(const http::Request& request) const {
  if (options_.api_key.empty()) return true;
  // Anthropic's clients send the key as x-api-key.
  if (const std::string* key = request.header("x-api-key"))
    return same_secret(*key, options_.api_key);
  const std::string* auth = request.header("authorization");
  if (!auth || auth->size() < 7) return false;
  std::string scheme = auth->substr(0, 7);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "bearer ") return false;
  return same_secret(auth->substr(7), options_.api_key);
}

void App::handle(const http::Request& request, std::shared_ptr<http::Responder> responder) {
  counters_->requests++;
  const std::string& path = request.path;
  const std::string& method = request.method;
  const bool get = method == "GET" || method == "HEAD";
  auto wrong_method = [&](const char* allowed) {
    error(responder, 405, method + " is not allowed on " + path + " (allowed: " + allowed + ")",
          "invalid_request_error", "", {{"Allow", allowed}});
  };

  if (path == "/health" || path == "/v1/health")
    return get ? health(responder) : wrong_method("GET, HEAD");
  if (path == "/ready") return get ? ready(responder) : wrong_method("GET, HEAD");
  if (path == "/metrics" && options_.public_metrics)
    return get ? metrics(responder) : wrong_method("GET, HEAD");
  // The chat page is public (it holds no data); the API calls it makes carry the key.
  if (path == "/ui" || path == "/ui/") {
    if (!get) return wrong_method("GET, HEAD");
    http::Response r;
    r.content_type = "text/html; charset=utf-8";
    // Its own inline script and style, this server's API, nothing else; never framed.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'unsafe-inline'; style-src "
                           "'unsafe-inline'; connect-src 'self'; base-uri 'none'; frame-ancestors "
                           "'none'");
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.body = kChatPage;
    return responder->send(std::move(r));
  }
  // Errors outside a route's own handler take the shape of the API the path belongs to.
  const Shape shape = path.rfind("/v1/messages", 0) == 0 ? Shape::kAnthropic
                      : path.rfind("/api/", 0) == 0      ? Shape::kOllama
                                                         : Shape::kOpenAI;
  if (!authorized(request)) {
    counters_->unauthorized++;
    return shaped_error(shape, responder, 401,
                        "a valid API key is required: send 'Authorization: Bearer KEY' (or "
                        "'x-api-key: KEY')",
                        "authentication_error", "", {{"WWW-Authenticate", "Bearer"}});
  }
  struct Route {
    const char* path;
    const char* allowed;
    std::function<void()> run;
  };
  const Route routes[] = {
      {"/v1/chat/completions", "POST", [&] { generate(request, responder, int(Endpoint::kChat)); }},
      {"/v1/completions", "POST",
       [&] { generate(request, responder, int(Endpoint::kCompletion)); }},
      {"/api/generate", "POST",
       [&] { generate(request, responder, int(Endpoint::kNativeGenerate)); }},
      {"/api/chat", "POST", [&] { generate(request, responder, int(Endpoint::kOllamaChat)); }},
      {"/v1/messages", "POST", [&] { messages(request, responder, false); }},
      {"/v1/responses", "POST", [&] { responses(request, responder); }},
      {"/v1/embeddings", "POST", [&] { generate(request, responder, int(Endpoint::kEmbeddings)); }},
      {"/api/embed", "POST", [&] { generate(request, responder, int(Endpoint::kOllamaEmbed)); }},
      {"/api/embeddings", "POST",
       [&] { generate(request, responder, int(Endpoint::kOllamaEmbeddings)); }},
      {"/v1/messages/count_tokens", "POST", [&] { messages(request, responder, true); }},
      {"/api/show", "POST", [&] { show(request, responder); }},
      {"/api/ps", "GET, HEAD", [&] { ps(responder); }},
      {"/api/version", "GET, HEAD",
       [&] {
         http::Response r;
         r.body = dump(json{{"version", kVersion}});
         responder->send(std::move(r));
       }},
      {"/v1/generate", "POST",
       [&] { generate(request, responder, int(Endpoint::kShimmyGenerate)); }},
      {"/v1/models", "GET, HEAD", [&] { list_models(responder, ""); }},
      {"/api/tags", "GET, HEAD", [&] { tags(responder); }},
      {"/metrics", "GET, HEAD", [&] { metrics(responder); }},
      {"/api/models/discover", "POST", [&] { discover(responder); }},
      {"/api/pull", "POST", [&] { pull(request, responder); }},
      {"/v1/api/pull", "POST", [&] { pull(request, responder); }},
      {"/", "GET, HEAD", [&] { root(responder); }},
  };
  for (const Route& r : routes) {
    if (path != r.path) continue;
    // A route is either POST-only or GET/HEAD.
    const bool post = std::string_view(r.allowed) == "POST";
    if (!(post ? method == "POST" : get)) return wrong_method(r.allowed);
    // Draining (SIGTERM): what would take a slot or start a download goes to another replica;
    // what answers at once (lists, show, metrics, discovery, deletes) is still served.
    if (post && draining_.load() && path != "/api/show" && path != "/api/models/discover")
      return shaped_error(shape, responder, 503,
                          "the server is shutting down and takes no new work; retry (another "
                          "replica will answer)",
                          "server_error", "", {{"Retry-After", "5"}}, "server_shutting_down");
    return r.run();
  }
  // DELETE /api/pull/{id}: cancel a pull (id as GET / lists it, or ORG/REPO for all of a repo's).
  if (path.rfind("/api/pull/", 0) == 0 && path.size() > 10) {
    if (method != "DELETE") return wrong_method("DELETE");
    const std::string target = path.substr(10);
    const auto ids = pulls_.cancel(target, "cancelled by DELETE " + path);
    if (ids.empty())
      return error(responder, 404, "no pull of '" + target + "' is running (GET / lists them)",
                   "not_found_error");
    http::Response r;
    r.body = dump(json{{"status", "cancelled"}, {"cancelled", ids}});
    return responder->send(std::move(r));
  }
  if (path.rfind("/api/models/", 0) == 0 && path.size() > 12 && path != "/api/models/discover")
    return method == "DELETE" ? delete_model(path.substr(12), responder) : wrong_method("DELETE");
  if (path.rfind("/v1/models/", 0) == 0 && path.size() > 11)
    return get ? list_models(responder, path.substr(11)) : wrong_method("GET, HEAD");
  error(responder, 404, "no route for " + method + " " + path, "not_found_error");
}

void App::generate(const http::Request& request, std::shared_ptr<http::Responder> responder,
                   int endpoint_value) {
  const Endpoint endpoint = static_cast<Endpoint>(endpoint_value);
  const bool ollama = endpoint == Endpoint::kOllamaChat || endpoint == Endpoint::kNativeGenerate;
  const bool embedding = endpoint == Endpoint::kEmbeddings || endpoint == Endpoint::kOllamaEmbed ||
                         endpoint == Endpoint::kOllamaEmbeddings;
  start_job(
      endpoint, request.body, responder,
      ollama || (embedding && endpoint != Endpoint::kEmbeddings) ? Shape::kOllama : Shape::kOpenAI,
      [&](const ParsedRequest& parsed) -> std::shared_ptr<JobSink> {
        if (embedding) return embeddings::make_sink(responder, endpoint, parsed);
        if (ollama) return ollama::make_sink(responder, endpoint, parsed);
        return std::make_shared<GenerationSink>(responder, endpoint, parsed);
      });
}

void App::responses(const http::Request& request, std::shared_ptr<http::Responder> responder) {
  // The Responses body, checked and read as the OpenAI chat body it corresponds to.
  json original;
  std::string body;
  try {
    original = json::parse(request.body, nullptr, false);
    if (original.is_discarded()) throw ApiError(400, "the body is not valid JSON");
    body = responses::to_chat_body(original).dump();
  } catch (const ApiError& e) {
    return error(responder, e.status, e.what(), e.type, e.param, {}, e.code);
  } catch (const json::exception& e) {
    return error(responder, 400,
                 std::string("a field of the body has the wrong type: ") + e.what());
  }
  start_job(Endpoint::kChat, body, responder, Shape::kOpenAI, [&](const ParsedRequest& parsed) {
    return responses::make_sink(responder, parsed, original);
  });
}

void App::messages(const http::Request& request, std::shared_ptr<http::Responder> responder,
                   bool count) {
  // Anthropic's body, checked and read as the OpenAI chat body it corresponds to.
  std::string body;
  bool thinking = false;
  try {
    const json parsed = json::parse(request.body, nullptr, false);
    if (parsed.is_discarded()) throw ApiError(400, "the body is not valid JSON");
    body = anthropic::to_chat_body(parsed, count).dump();
    thinking = anthropic::thinking_requested(parsed);
  } catch (const ApiError& e) {
    return shaped_error(Shape::kAnthropic, responder, e.status, e.what());
  } catch (const json::exception& e) {
    return shaped_error(Shape::kAnthropic, responder, 400,
                        std::string("a field of the body has the wrong type: ") + e.what());
  }
  start_job(
      Endpoint::kChat, body, responder, Shape::kAnthropic,
      [&](const ParsedRequest& parsed) {
        return anthropic::make_sink(responder, parsed, count, thinking);
      },
      count);
}

void App::shaped_error(Shape shape, std::shared_ptr<http::Responder> to, int status,
                       const std::string& message, const std::string& type,
                       const std::string& param, http::Headers headers, const std::string& code) {
  if (shape == Shape::kOpenAI)
    return error(to, status, message, type, param, std::move(headers), code);
  counters_->errors++;
  http::Response r;
  r.status = status;
  r.headers = std::move(headers);
  r.body = shape == Shape::kOllama ? ollama::error_body(message)
                                   : anthropic::error_body(status, message);
  to->send(std::move(r));
}

void App::start_job(Endpoint endpoint, std::string_view body,
                    std::shared_ptr<http::Responder> responder, Shape shape,
                    const std::function<std::shared_ptr<JobSink>(const ParsedRequest&)>& make_sink,
                    bool count_only) {
  // Errors in the shape of the endpoint's API.
  auto error = [&](std::shared_ptr<http::Responder> to, int status, const std::string& message,
                   const std::string& type = "invalid_request_error", const std::string& param = "",
                   http::Headers headers = {}, const std::string& code = "") {
    shaped_error(shape, std::move(to), status, message, type, param, std::move(headers), code);
  };
  const std::vector<ModelEntry> models = registry_.list();
  // The model of a request that names none: --model's, else the only one there is.
  std::string fallback;
  if (!options_.default_model_file.empty())
    fallback = registry_.id_for_path(options_.default_model_file);
  if (fallback.empty() && models.size() == 1) fallback = models[0].id;
  std::vector<std::string> ids;
  for (const ModelEntry& m : models) ids.push_back(m.id);
  ParsedRequest parsed;
  try {
    parsed = parse_request(endpoint, body, fallback, ids);
  } catch (const ApiError& e) {
    return error(responder, e.status, e.what(), e.type, e.param, {}, e.code);
  }
  if (std::string why = registry_.not_a_model(parsed.job.model); !why.empty())
    return error(responder, 400, why, "invalid_request_error", "model", {}, "model_not_supported");
  if (!registry_.find(parsed.job.model)) {
    std::string names;
    for (const ModelEntry& m : models) names += (names.empty() ? "" : ", ") + m.id;
    return error(
        responder, 404,
        "model '" + parsed.job.model + "' not found; available: " +
            (names.empty() ? "none (put GGUF files in ./models or use --model-dirs)" : names),
        "not_found_error", "model");
  }
  // Adapters (--lora) belong to one model and are numbered from 0.
  if (parsed.job.lora) {
    const SchedulerOptions& o = scheduler_.options();
    const std::string lora_model = o.loras.empty() ? "" : registry_.id_for_path(o.lora_model_path);
    if (lora_model.empty() || registry_.find(parsed.job.model)->id != lora_model)
      return error(responder, 400,
                   "model '" + parsed.job.model + "' has no LoRA adapters" +
                       (lora_model.empty() ? " (start the server with --model FILE --lora ADAPTER)"
                                           : " (they belong to '" + lora_model + "')"),
                   "invalid_request_error", "lora");
    for (const auto& [id, scale] : *parsed.job.lora)
      if (id >= static_cast<int>(o.loras.size()))
        return error(responder, 400,
                     "lora id " + std::to_string(id) + " does not exist (the server has " +
                         std::to_string(o.loras.size()) + " adapter(s), ids from 0)",
                     "invalid_request_error", "lora", {}, "invalid_value");
  }
  parsed.job.count_only = count_only;
  std::shared_ptr<JobSink> sink = make_sink(parsed);
  if (!scheduler_.submit(std::move(parsed.job), sink))
    return error(responder, 503, "the server is busy: every slot and the queue are full",
                 "server_error", "", {{"Retry-After", "1"}});
}

void App::health(std::shared_ptr<http::Responder> responder) {
  const SchedulerStats s = scheduler_.stats();
  const double uptime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  json body = {
      {"status", "healthy"},
      {"version", kVersion},
      {"uptime_seconds", uptime},
      {"backend", options_.backend},
      {"device", options_.device},
      {"models",
       {{"found", registry_.list().size()},
        {"loaded", s.loaded},
        {"skipped", registry_.skipped()}}},
      {"memory", {{"resident_bytes", resident_bytes()}}},
      {"slots",
       {{"parallel", scheduler_.options().parallel}, {"active", s.active}, {"queued", s.queued}}},
      {"requests",
       {{"total", counters_->requests.load()},
        {"generations", s.requests},
        {"errors", counters_->errors.load() + s.errors},
        {"cancelled", s.cancelled}}},
      {"tokens", {{"prompt", s.prompt_tokens}, {"completion", s.completion_tokens}}}};
  http::Response r;
  r.body = dump(body);
  responder->send(std::move(r));
}

void App::ready(std::shared_ptr<http::Responder> responder) {
  const bool draining = draining_.load(), ready = ready_.load();
  http::Response r;
  r.status = ready && !draining ? 200 : 503;
  r.body = dump(json{{"status", draining ? "draining" : ready ? "ready" : "starting"}});
  if (r.status == 503) r.headers.emplace_back("Retry-After", "5");
  responder->send(std::move(r));
}

void App::metrics(std::shared_ptr<http::Responder> responder) {
  const SchedulerStats s = scheduler_.stats();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    char line[256];
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name,
                  type, name, value);
    out += line;
  };
  metric("ember_requests_total", "counter", "HTTP requests received", double(counters_->requests));
  metric("ember_request_errors_total", "counter", "requests answered with an error",
         double(counters_->errors + s.errors));
  metric("ember_generations_total", "counter", "generation requests started", double(s.requests));
  metric("ember_generations_cancelled_total", "counter", "generations whose client went away",
         double(s.cancelled));
  metric("ember_prompt_tokens_total", "counter", "prompt tokens processed",
         double(s.prompt_tokens));
  metric("ember_completion_tokens_total", "counter", "tokens generated",
         double(s.completion_tokens));
  metric("ember_queue_depth", "gauge", "requests waiting for a slot", s.queued);
  metric("ember_active_requests", "gauge", "requests generating now", s.active);
  metric("ember_models_loaded", "gauge", "models in memory", double(s.loaded.size()));
  metric("ember_draining", "gauge", "1 from SIGTERM until exit: no new work is taken",
         draining_.load() ? 1 : 0);
  metric("ember_time_to_first_token_seconds_sum", "counter", "time to first token, summed",
         s.ttft_seconds_sum);
  metric("ember_time_to_first_token_seconds_count", "counter", "requests with a first token",
         double(s.ttft_count));
  metric("ember_time_per_token_seconds_sum", "counter", "time between tokens, summed",
         s.token_seconds_sum);
  metric("ember_time_per_token_seconds_count", "counter", "tokens after the first",
         double(s.token_count));
  metric("ember_batch_steps_total", "counter", "forward passes", double(s.steps));
  metric("ember_speculative_draft_tokens_total", "counter",
         "tokens guessed ahead (prompt lookup or the draft model) and verified",
         double(s.draft_tokens));
  metric("ember_speculative_accepted_tokens_total", "counter",
         "guessed tokens the model chose too (each saved a forward pass)",
         double(s.accepted_tokens));
  metric("ember_batch_tokens_total", "counter", "tokens through forward passes",
         double(s.batched_tokens));
  metric("ember_resident_memory_bytes", "gauge", "resident set size", double(resident_bytes()));
  http::Response r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = out;
  responder->send(std::move(r));
}

void App::list_models(std::shared_ptr<http::Responder> responder, const std::string& one) {
  auto object = [](const ModelEntry& m) {
    return json{{"id", m.id}, {"object", "model"}, {"created", m.modified}, {"owned_by", "ember"}};
  };
  http::Response r;
  if (!one.empty()) {
    auto m = registry_.find(one);
    if (!m)
      return error(responder, 404, "model '" + one + "' not found", "not_found_error", "model");
    r.body = dump(object(*m));
  } else {
    json data = json::array();
    for (const ModelEntry& m : registry_.list()) data.push_back(object(m));
    r.body = dump(json{{"object", "list"}, {"data", data}});
  }
  responder->send(std::move(r));
}

void App::tags(std::shared_ptr<http::Responder> responder) {
  json models = json::array();
  for (const ModelEntry& m : registry_.list()) {
    char modified[32];
    std::time_t t = static_cast<std::time_t>(m.modified);
    std::tm utc{};
    gmtime_r(&t, &utc);
    std::strftime(modified, sizeof modified, "%Y-%m-%dT%H:%M:%SZ", &utc);
    models.push_back({{"name", m.id},
                      {"model", m.id},
                      {"modified_at", modified},
                      {"size", m.size_bytes},
                      {"digest", ""},
                      {"details", ollama::details(m)}});
  }
  http::Response r;
  r.body = dump(json{{"models", models}});
  responder->send(std::move(r));
}

void App::show(const http::Request& request, std::shared_ptr<http::Responder> responder) {
  auto fail = [&](int status, const std::string& message) {
    counters_->errors++;
    http::Response r;
    r.status = status;
    r.body = ollama::error_body(message);
    responder->send(std::move(r));
  };
  json body = json::parse(request.body, nullptr, false);
  if (!body.is_object()) return fail(400, "the body must be a JSON object");
  const json name = body.contains("model") ? body["model"] : body.value("name", json());
  if (!name.is_string() || name.get<std::string>().empty())
    return fail(400, "'model' is required (a model name, as /api/tags lists them)");
  const std::optional<ModelEntry> m = registry_.find(name.get<std::string>());
  if (!m) return fail(404, "model '" + name.get<std::string>() + "' not found");
  const bool verbose =
      body.contains("verbose") && body["verbose"].is_boolean() && body["verbose"].get<bool>();
  try {
    // Reading the file (metadata, vocabulary, template) takes a while on the event loop: once
    // per file version.
    const std::string key = m->path + "\n" + std::to_string(m->modified) + (verbose ? "\nv" : "");
    auto cached = show_cache_.find(key);
    if (cached == show_cache_.end()) {
      if (show_cache_.size() > 64) show_cache_.clear();
      cached = show_cache_.emplace(key, ollama::show(*m, verbose)).first;
    }
    http::Response r;
    r.body = cached->second;
    responder->send(std::move(r));
  } catch (const std::exception& e) {
    fail(500, "cannot read model '" + m->id + "': " + e.what());
  }
}

void App::ps(std::shared_ptr<http::Responder> responder) {
  http::Response r;
  r.body = ollama::ps(scheduler_.stats().loaded_models, registry_);
  responder->send(std::move(r));
}

void App::discover(std::shared_ptr<http::Responder> responder) {
  const size_t n = registry_.rescan();
  json ids = json::array();
  for (const ModelEntry& m : registry_.list()) ids.push_back(m.id);
  http::Response r;
  r.body = dump(json{{"status", "ok"}, {"models_found", n}, {"models", ids}});
  responder->send(std::move(r));
}

void App::pull(const http::Request& request, std::shared_ptr<http::Responder> responder) {
  pull::PullRequest r;
  bool stream = true;
  // Ollama's clients get Ollama's line and error shapes: those whose User-Agent says so
  // (ollama-python, ollama-js, the ollama CLI) and bodies in Ollama's form (`name` rather than
  // `model`, or `insecure`), as Open WebUI sends them.
  const std::string* agent = request.header("user-agent");
  bool ollama_client = agent && agent->rfind("ollama", 0) == 0;
  auto error = [&](std::shared_ptr<http::Responder> to, int status, const std::string& message,
                   const std::string& type = "invalid_request_error",
                   const std::string& param = "") {
    shaped_error(ollama_client ? Shape::kOllama : Shape::kOpenAI, std::move(to), status, message,
                 type, param);
  };
  try {
    json body = json::parse(request.body);
    if (body.is_object() &&
        ((body.contains("name") && !body.contains("model")) || body.contains("insecure")))
      ollama_client = true;
    if (!body.is_object()) throw std::invalid_argument("the body must be a JSON object");
    auto text = [&](const char* key, const std::string& fallback) {
      auto it = body.find(key);
      if (it == body.end() || it->is_null()) return fallback;
      if (!it->is_string())
        throw std::invalid_argument(std::string("'") + key + "' must be a string");
      return it->get<std::string>();
    };
    // ORG/REPO[:FILE|:QUANT], also behind hf.co/, as in `ember pull`.
    r = pull::parse_model_spec(text("model", text("name", "")));
    r.filename = text("filename", r.filename);
    r.quant = text("quant", r.quant);
    r.revision = text("revision", "main");
    if (body.contains("stream") && body["stream"].is_boolean()) stream = body["stream"].get<bool>();
    pull::validate(r);
  } catch (const json::parse_error& e) {
    return error(responder, 400,
                 "the body is not valid JSON (at byte " + std::to_string(e.byte) + ")");
  } catch (const json::exception& e) {  // e.g. a number too large for a double
    return error(responder, 400, std::string("the body is not valid JSON: ") + e.what());
  } catch (const std::invalid_argument& e) {
    return error(responder, 400, e.what(), "invalid_request_error", "model");
  }
  if (stream) responder->start_stream(200, "application/x-ndjson");
  // A client that hangs up stops following; a pull nobody follows any more is cancelled.
  pulls_.pull(
      r,
      [responder, stream, ollama_client](const std::string& ember_line, bool last) {
        const bool failed = json::parse(ember_line).value("status", "") == "error";
        const std::string line = ollama_client ? ollama::pull_line(ember_line) : ember_line;
        if (stream) {
          if (!line.empty()) responder->write(line + "\n");
          if (last) responder->end();
        } else if (last) {
          http::Response r;
          r.status = failed ? 502 : 200;
          r.body = line.empty() ? ember_line : line;
          responder->send(std::move(r));
        }
      },
      [responder] { return responder->closed(); });
}

void App::delete_model(const std::string& id, std::shared_ptr<http::Responder> responder) {
  auto entry = registry_.find(id);
  if (!entry)
    return error(responder, 404, "model '" + id + "' not found", "not_found_error", "model");
  std::error_code ec;
  const auto dir = std::filesystem::weakly_canonical(options_.pull_dir, ec);
  const auto file = std::filesystem::weakly_canonical(entry->path, ec);
  if (entry->source != "dir" || file.parent_path() != dir)
    return error(responder, 409,
                 "model '" + entry->id + "' is not a pulled model in " + options_.pull_dir +
                     "; ember deletes only the files it pulled (" + entry->path + ")",
                 "invalid_request_error", "model");
  const ModelEntry doomed = *entry;
  ModelRegistry& registry = registry_;
  scheduler_.unload(doomed.id, [responder, doomed, &registry](bool unloaded) {
    if (!unloaded) {
      http::Response r;
      r.status = 409;
      r.body = error_body(
          409, "model '" + doomed.id + "' is answering requests; try again when they finish",
          "invalid_request_error", "model");
      responder->send(std::move(r));
      return;
    }
    // Every part of a split model, the first first: from then on the set is no model at all.
    std::error_code ec;
    for (const std::string& part : doomed.part_paths) {
      std::error_code part_ec;
      std::filesystem::remove(part, part_ec);
      if (part_ec && !ec) ec = part_ec;
    }
    registry.rescan();
    http::Response r;
    r.status = ec ? 500 : 200;
    r.body = ec ? error_body(500, "cannot delete " + doomed.path + ": " + ec.message(),
                             "server_error", "")
                : dump(json{{"status", "deleted"}, {"id", doomed.id}, {"path", doomed.path}});
    responder->send(std::move(r));
  });
}

void App::root(std::shared_ptr<http::Responder> responder) {
  json body = {{"name", "ember"},
               {"version", kVersion},
               {"description", "GGUF inference server with an OpenAI-compatible API"},
               {"endpoints",
                {"GET /health",
                 "GET /ready",
                 "GET /v1/models",
                 "GET /v1/models/{id}",
                 "POST /v1/chat/completions",
                 "POST /v1/completions",
                 "POST /api/generate",
                 "POST /v1/generate",
                 "POST /api/chat",
                 "POST /v1/messages",
                 "POST /v1/messages/count_tokens",
                 "POST /v1/responses",
                 "POST /v1/embeddings",
                 "POST /api/embed",
                 "POST /api/show",
                 "GET /api/ps",
                 "GET /api/version",
                 "GET /api/tags",
                 "POST /api/models/discover",
                 "GET /metrics",
                 "POST /api/pull",
                 "DELETE /api/pull/{id}",
                 "DELETE /api/models/{id}"}},
               {"downloads", json::array()}};
  // Pulls in progress: id (for DELETE /api/pull/{id}), repo, file, status and bytes.
  for (const std::string& line : pulls_.status_lines())
    body["downloads"].push_back(json::parse(line));
  http::Response r;
  r.body = dump(body);
  responder->send(std::move(r));
}

}  // namespace ember::server
