// The HTTP API of `ember serve` (SPEC.md): routes, authentication, and the glue between the
// HTTP server and the scheduler. JSON is handled here and in api_request.cpp only.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "server/api_request.h"
#include "server/http/server.h"
#include "server/model_registry.h"
#include "server/pull/pull_manager.h"
#include "server/scheduler.h"

namespace ember::server {

struct AppOptions {
  std::string api_key;  // empty: no authentication
  std::string backend = "cpu";
  std::string device;                 // what the backend runs on, for /health
  std::string pull_dir = "./models";  // where pulled files go; only these may be deleted
  // GET /metrics without the API key (--public-metrics): for a Prometheus that scrapes pods by
  // annotation without credentials; the NetworkPolicy then says who may reach the port.
  bool public_metrics = false;
  // The model of a request that names none (--model FILE); empty: the only model, if just one.
  std::string default_model_file;
};

class App {
 public:
  App(ModelRegistry& registry, Scheduler& scheduler, pull::PullManager& pulls, AppOptions options);
  void handle(const http::Request& request, std::shared_ptr<http::Responder> responder);
  // GET /ready answers 200 from set_ready() (the server listens and discovery has run) until
  // begin_drain(); from then on 503, and new work (generation, embeddings, pulls) is refused with
  // 503 + Retry-After while what is in flight finishes. Thread-safe.
  void set_ready() { ready_ = true; }
  void begin_drain() { draining_ = true; }

 private:
  struct Counters {
    std::atomic<uint64_t> requests{0}, errors{0}, unauthorized{0};
  };

  // Whose API a route belongs to: its answers and errors take that API's shape.
  enum class Shape { kOpenAI, kOllama, kAnthropic };

  bool authorized(const http::Request& request) const;
  void generate(const http::Request& request, std::shared_ptr<http::Responder> responder,
                int endpoint);
  // Anthropic's /v1/messages, or (count) /v1/messages/count_tokens.
  void messages(const http::Request& request, std::shared_ptr<http::Responder> responder,
                bool count);
  // OpenAI's /v1/responses.
  void responses(const http::Request& request, std::shared_ptr<http::Responder> responder);
  // Parses `body` for `endpoint`, checks the model and submits the job with the sink
  // `make_sink` gives; errors before that take `shape`. count_only: Job::count_only.
  void start_job(Endpoint endpoint, std::string_view body,
                 std::shared_ptr<http::Responder> responder, Shape shape,
                 const std::function<std::shared_ptr<JobSink>(const ParsedRequest&)>& make_sink,
                 bool count_only = false);
  void shaped_error(Shape shape, std::shared_ptr<http::Responder> to, int status,
                    const std::string& message, const std::string& type = "invalid_request_error",
                    const std::string& param = "", http::Headers headers = {},
                    const std::string& code = "");
  void health(std::shared_ptr<http::Responder> responder);
  void ready(std::shared_ptr<http::Responder> responder);  // GET /ready
  void metrics(std::shared_ptr<http::Responder> responder);
  void list_models(std::shared_ptr<http::Responder> responder, const std::string& one);
  void tags(std::shared_ptr<http::Responder> responder);
  // Ollama's /api/show (POST {"model"|"name", "verbose"}), /api/ps, /api/version.
  void show(const http::Request& request, std::shared_ptr<http::Responder> responder);
  void ps(std::shared_ptr<http::Responder> responder);
  void root(std::shared_ptr<http::Responder> responder);
  void discover(std::shared_ptr<http::Responder> responder);
  void pull(const http::Request& request, std::shared_ptr<http::Responder> responder);
  void delete_model(const std::string& id, std::shared_ptr<http::Responder> responder);
  void error(std::shared_ptr<http::Responder> responder, int status, const std::string& message,
             const std::string& type = "invalid_request_error", const std::string& param = "",
             http::Headers headers = {}, const std::string& code = "");

  ModelRegistry& registry_;
  Scheduler& scheduler_;
  pull::PullManager& pulls_;
  AppOptions options_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<bool> ready_{false}, draining_{false};
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
  std::map<std::string, std::string> show_cache_;  // /api/show bodies (event loop only)
};

// An OpenAI-shaped error body: {"error": {"message", "type", "param", "code"}}. `code` is a
// string as OpenAI sends it; empty: the status's usual one ("model_not_found" for a 404 about
// the model, "invalid_api_key" for 401, "invalid_request_error" for other 400s, ...).
std::string error_body(int status, const std::string& message, const std::string& type,
                       const std::string& param, const std::string& code = "");

}  // namespace ember::server
