#include "server/embeddings/embeddings_api.h"

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "server/app.h"
#include "server/ollama/ollama_api.h"

namespace ember::server::embeddings {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// RFC 4648 base64 of the floats' bytes (little-endian float32, as OpenAI sends them).
std::string base64(const std::vector<float>& v) {
  static constexpr char kDigits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(v.size() * 4, '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t chunk = 0;
    for (size_t j = 0; j < 3; ++j)
      chunk = chunk << 8 | (j < n ? static_cast<uint8_t>(bytes[i + j]) : 0);
    for (size_t j = 0; j < 4; ++j) out += j <= n ? kDigits[(chunk >> (18 - 6 * j)) & 63] : '=';
  }
  return out;
}

class EmbeddingsSink : public JobSink {
 public:
  EmbeddingsSink(std::shared_ptr<http::Responder> responder, Endpoint endpoint,
                 const ParsedRequest& request)
      : responder_(std::move(responder)),
        endpoint_(endpoint),
        base64_(request.base64),
        model_(request.job.model),
        created_(Clock::now()) {}

  bool cancelled() const override { return responder_->closed(); }
  void on_start(const Start& start) override {
    model_ = start.model_id;
    started_ = Clock::now();
  }
  void on_text(const std::string&, std::vector<TokenInfo>) override {}
  void on_embeddings(std::vector<std::vector<float>> vectors, int tokens) override {
    vectors_ = std::move(vectors);
    tokens_ = tokens;
  }

  void on_done(const model::GenerateResult&) override {
    json body;
    if (endpoint_ == Endpoint::kEmbeddings) {
      json data = json::array();
      for (size_t i = 0; i < vectors_.size(); ++i)
        data.push_back({{"object", "embedding"},
                        {"index", i},
                        {"embedding", base64_ ? json(base64(vectors_[i])) : json(vectors_[i])}});
      body = {{"object", "list"},
              {"data", data},
              {"model", model_},
              {"usage", {{"prompt_tokens", tokens_}, {"total_tokens", tokens_}}}};
    } else if (endpoint_ == Endpoint::kOllamaEmbed) {
      const auto ns = [](Clock::time_point a, Clock::time_point b) {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
      };
      body = {{"model", model_},
              {"embeddings", vectors_},
              {"total_duration", ns(created_, Clock::now())},
              {"load_duration", ns(created_, started_)},
              {"prompt_eval_count", tokens_}};
    } else {
      body = {{"embedding", vectors_.empty() ? json::array() : json(vectors_[0])}};
    }
    responder_->log_field("model=" + model_);
    responder_->log_field("prompt_tokens=" + std::to_string(tokens_));
    http::Response out;
    out.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    responder_->send(std::move(out));
  }

  void on_error(int status, const std::string& message, const std::string& code) override {
    http::Response out;
    out.status = status;
    if (status == 503) out.headers.emplace_back("Retry-After", "1");
    out.body =
        endpoint_ == Endpoint::kEmbeddings
            ? error_body(status, message, status >= 500 ? "server_error" : "invalid_request_error",
                         status == 404 ? "model" : "", code)
            : ollama::error_body(message);
    responder_->send(std::move(out));
  }

 private:
  std::shared_ptr<http::Responder> responder_;
  Endpoint endpoint_;
  bool base64_;
  std::string model_;
  Clock::time_point created_, started_ = Clock::now();
  std::vector<std::vector<float>> vectors_;
  int tokens_ = 0;
};

}  // namespace

std::shared_ptr<JobSink> make_sink(std::shared_ptr<http::Responder> responder, Endpoint endpoint,
                                   const ParsedRequest& request) {
  return std::make_shared<EmbeddingsSink>(std::move(responder), endpoint, request);
}

}  // namespace ember::server::embeddings
