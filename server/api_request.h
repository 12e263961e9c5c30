// Request bodies of the generation endpoints (OpenAI chat and completions, native and Shimmy
// generate) turned into a scheduler Job. Every field SPEC.md lists is read and checked; unknown
// fields are ignored; a bad value is an ApiError naming the field (HTTP 400).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "server/scheduler.h"

namespace ember::server {

// kNativeGenerate is Ollama's /api/generate, kOllamaChat its /api/chat; the embedding ones are
// OpenAI's /v1/embeddings and Ollama's /api/embed and /api/embeddings.
enum class Endpoint {
  kChat,
  kCompletion,
  kNativeGenerate,
  kShimmyGenerate,
  kOllamaChat,
  kEmbeddings,
  kOllamaEmbed,
  kOllamaEmbeddings
};

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "",
           std::string type = "invalid_request_error", std::string code = "")
      : std::runtime_error(message),
        status(status),
        param(std::move(param)),
        type(std::move(type)),
        code(std::move(code)) {}
  int status;
  std::string param, type;
  std::string code;  // OpenAI's error code ("model_not_found", ...); empty: the status's default
};

struct ParsedRequest {
  Job job;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
  bool base64 = false;  // embeddings: encoding_format "base64"
};

// Parses and checks a body. `default_model` is used when the body names no model (as
// llama-server and Shimmy do with their one model); when it is empty too, the error lists
// `available`. Throws ApiError (status 400) for a bad or unsupported field, naming it.
ParsedRequest parse_request(Endpoint endpoint, std::string_view body,
                            const std::string& default_model,
                            const std::vector<std::string>& available = {});

// A number as a user would write it in a message: 0, 20, 0.5, 1e+09 → "1000000000".
std::string format_number(double v);

}  // namespace ember::server
