#include "server/ollama/ollama_api.h"

#include <chrono>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>

#include "gguf/model_files.h"
#include "model/chat/chat_output.h"
#include "model/chat/chat_template.h"
#include "server/gguf_json.h"
#include "server/json_text.h"

namespace ember::server::ollama {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

int64_t nanoseconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Streams or collects one generation in Ollama's shapes.
class OllamaSink : public JobSink {
 public:
  OllamaSink(std::shared_ptr<http::Responder> responder, Endpoint endpoint,
             const ParsedRequest& request)
      : responder_(std::move(responder)),
        chat_endpoint_(endpoint == Endpoint::kOllamaChat),
        stream_(request.stream),
        model_(request.job.model),
        created_(Clock::now()) {}

  bool cancelled() const override { return responder_->closed(); }

  void on_start(const Start& start) override {
    model_ = start.model_id;
    started_ = Clock::now();
    if (stream_) {
      responder_->start_stream(200, "application/x-ndjson");
      streaming_ = true;
    }
    output_.emplace(start.output);
    collect(output_->push(start.output_prefix));
  }

  void on_text(const std::string& text, std::vector<TokenInfo>) override {
    if (!first_token_) first_token_ = Clock::now();
    collect(output_->push(text));
  }

  void on_done(const model::GenerateResult& r) override {
    const auto now = Clock::now();
    collect(output_->finish());
    responder_->log_field("model=" + model_);
    responder_->log_field("prompt_tokens=" + std::to_string(r.prompt_tokens));
    responder_->log_field("completion_tokens=" + std::to_string(r.completion_tokens));
    std::string reason = r.finish_reason;
    json tail = base();
    if (chat_endpoint_) {
      json message = {{"role", "assistant"}, {"content", stream_ ? "" : content_}};
      if (!stream_ && !thinking_.empty()) message["thinking"] = thinking_;
      if (!calls_.empty()) {
        if (stream_) {  // the calls go out whole, in a line of their own, as Ollama sends them
          json line = base();
          line["message"] = {{"role", "assistant"}, {"content", ""}, {"tool_calls", calls()}};
          line["done"] = false;
          write(line);
        } else {
          message["tool_calls"] = calls();
        }
      }
      tail["message"] = message;
    } else {
      tail["response"] = stream_ ? "" : content_;
      if (!stream_ && !thinking_.empty()) tail["thinking"] = thinking_;
    }
    tail["done"] = true;
    tail["done_reason"] = reason;
    const auto first = first_token_.value_or(now);
    const auto started = started_.value_or(now);
    tail["total_duration"] = nanoseconds(created_, now);
    tail["load_duration"] = nanoseconds(created_, started);
    tail["prompt_eval_count"] = r.prompt_tokens;
    tail["prompt_eval_duration"] = nanoseconds(started, first);
    tail["eval_count"] = r.completion_tokens;
    tail["eval_duration"] = nanoseconds(first, now);
    if (!chat_endpoint_ && !stream_) {  // what ember's /api/generate answered before
      tail["choices"] = json::array(
          {{{"text", content_}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", reason}}});
      tail["usage"] = {{"prompt_tokens", r.prompt_tokens},
                       {"completion_tokens", r.completion_tokens},
                       {"total_tokens", r.prompt_tokens + r.completion_tokens}};
    }
    if (streaming_) {
      write(tail);
      responder_->end();
      return;
    }
    http::Response out;
    out.body = dump(tail);
    responder_->send(std::move(out));
  }

  void on_error(int status, const std::string& message, const std::string&) override {
    if (streaming_) {
      write(json{{"error", message}});
      responder_->end();
      return;
    }
    http::Response out;
    out.status = status;
    if (status == 503) out.headers.emplace_back("Retry-After", "1");
    out.body = error_body(message);
    responder_->send(std::move(out));
  }

 private:
  json base() const { return json{{"model", model_}, {"created_at", rfc3339(unix_now())}}; }

  void write(const json& line) { responder_->write(dump(line) + "\n"); }

  // Tool calls as Ollama writes them: {"function": {"name", "arguments": {...}}}.
  json calls() const {
    json out = json::array();
    for (const auto& [name, arguments] : calls_) {
      json args = json::parse(arguments, nullptr, false);
      if (args.is_discarded()) args = json::object();  // cut off by num_predict
      out.push_back({{"function", {{"name", name}, {"arguments", args}}}});
    }
    return out;
  }

  void collect(const std::vector<chat::ChatDelta>& deltas) {
    for (const chat::ChatDelta& d : deltas) {
      switch (d.kind) {
        case chat::ChatDelta::kContent:
        case chat::ChatDelta::kReasoning: {
          const bool thinking = d.kind == chat::ChatDelta::kReasoning;
          (thinking ? thinking_ : content_) += d.text;
          if (!streaming_) break;
          json line = base();
          const char* field = thinking ? "thinking" : chat_endpoint_ ? "content" : "response";
          if (chat_endpoint_) {
            line["message"] = {{"role", "assistant"}, {"content", ""}};
            line["message"][field] = d.text;
          } else {
            line["response"] = "";
            line[field] = d.text;
          }
          line["done"] = false;
          write(line);
          break;
        }
        case chat::ChatDelta::kToolCall:
          calls_.emplace_back(d.name, d.text);
          break;
        case chat::ChatDelta::kToolArguments:
          calls_[d.index].second += d.text;
          break;
      }
    }
  }

  std::shared_ptr<http::Responder> responder_;
  bool chat_endpoint_, stream_;
  std::string model_;
  Clock::time_point created_;
  std::optional<Clock::time_point> started_, first_token_;
  bool streaming_ = false;
  std::optional<chat::ChatOutputParser> output_;
  std::string content_, thinking_;
  std::vector<std::pair<std::string, std::string>> calls_;  // name, arguments
};

}  // namespace

std::shared_ptr<JobSink> make_sink(std::shared_ptr<http::Responder> responder, Endpoint endpoint,
                                   const ParsedRequest& request) {
  return std::make_shared<OllamaSink>(std::move(responder), endpoint, request);
}

std::string error_body(const std::string& message) {
  return dump(json{{"error", message}});
}

std::string pull_line(const std::string& ember_line) {
  const json line = json::parse(ember_line, nullptr, false);
  if (!line.is_object()) return "";
  const std::string status = line.value("status", "");
  json out;
  if (status == "starting" || status == "selected") {
    if (status == "selected") return "";
    out = {{"status", "pulling manifest"}};
  } else if (status == "downloading" || status == "queued" || status == "joined" ||
             status == "retrying") {
    const std::string file = line.value("filename", json("model")).is_string()
                                 ? line.value("filename", std::string("model"))
                                 : "model";
    out = {{"status", "pulling " + file}};
    if (line.contains("sha256") && line["sha256"].is_string() &&
        !line["sha256"].get<std::string>().empty())
      out["digest"] = "sha256:" + line["sha256"].get<std::string>();
    if (line.contains("total")) out["total"] = line["total"];
    if (line.contains("completed")) out["completed"] = line["completed"];
  } else if (status == "verifying") {
    out = {{"status", "verifying sha256 digest"}};
  } else if (status == "complete") {
    out = {{"status", "success"}};
  } else if (status == "error") {
    out = {{"error", line.value("error", std::string("the pull failed"))}};
  } else {
    return "";  // destination, warning: nothing Ollama would say
  }
  return dump(out);
}

std::string rfc3339(double unix_seconds) {
  const auto whole = static_cast<std::time_t>(std::floor(unix_seconds));
  const int micros = static_cast<int>((unix_seconds - static_cast<double>(whole)) * 1e6);
  std::tm utc{};
  gmtime_r(&whole, &utc);
  char buf[48];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buf + n, sizeof buf - n, ".%06dZ", micros);
  return buf;
}

json details(const ModelEntry& m) {
  return {{"parent_model", ""},   {"format", "gguf"},
          {"family", m.arch},     {"families", json::array({m.arch})},
          {"parameter_size", ""}, {"quantization_level", m.quant}};
}

std::string show(const ModelEntry& m, bool verbose) {
  const gguf::ModelFiles files = gguf::ModelFiles::open(m.path);
  json info = json::object();
  for (const auto& kv : files.metadata().entries())
    info[std::string(kv.key)] = gguf_value_json(kv.value, verbose ? 0 : 64);
  const text::Vocab vocab = text::Vocab::from_gguf(files.metadata());
  const chat::ChatTemplate chat = chat::ChatTemplate::for_model(files.metadata(), vocab);
  const chat::TemplateTraits traits = chat::template_traits(chat, vocab);
  json capabilities = json::array({"completion"});
  if (traits.tools.renders_tools) capabilities.push_back("tools");
  if (traits.reasoning) capabilities.push_back("thinking");
  json d = details(m);
  uint64_t parameters = 0;
  for (const auto& t : files.tensors()) parameters += t.elements();
  char size[32];
  std::snprintf(size, sizeof size, parameters >= 1e9 ? "%.1fB" : "%.0fM",
                parameters >= 1e9 ? parameters / 1e9 : parameters / 1e6);
  d["parameter_size"] = size;
  return dump(
      json{{"license", std::string(files.metadata().get_string("general.license").value_or(""))},
           {"modelfile", "# ember serves " + m.path + " as it is\nFROM " + m.path + "\n"},
           {"parameters", ""},
           {"template", chat.source()},
           {"details", d},
           {"model_info", info},
           {"capabilities", capabilities},
           {"modified_at", rfc3339(static_cast<double>(m.modified))}});
}

std::string ps(const std::vector<LoadedModel>& loaded, const ModelRegistry& registry) {
  json models = json::array();
  for (const LoadedModel& l : loaded) {
    const std::optional<ModelEntry> m = registry.find(l.id);
    if (!m) continue;
    // A model that stays loaded: Ollama shows a date far ahead for keep_alive -1.
    const double expires = l.expires_at > 0 ? l.expires_at : 253402300799.0;  // 9999-12-31
    models.push_back({{"name", m->id},
                      {"model", m->id},
                      {"size", l.size_bytes},
                      {"digest", ""},
                      {"details", details(*m)},
                      {"expires_at", rfc3339(expires)},
                      {"size_vram", 0}});
  }
  return dump(json{{"models", models}});
}

}  // namespace ember::server::ollama
