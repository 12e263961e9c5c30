// Request bodies of the generation endpoints (OpenAI chat and completions, native and Shimmy
// generate) turned into a scheduler Job. Every field SPEC.md lists is read and checked; unknown
// fields are ignored; a bad value is an ApiError naming the field (HTTP 400).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "server/scheduler.h"

namespace ember::server {

enum class Endpoint { kChat, kCompletion, kNativeGenerate, kShimmyGenerate };

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, const std::string& message, std::string param = "",
           std::string type = "invalid_request_error")
      : std::runtime_error(message),
        status(status),
        param(std::move(param)),
        type(std::move(type)) {}
  int status;
  std::string param, type;
};

struct ParsedRequest {
  Job job;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;
};

// `default_model` is used when the body names none (empty: the model field is required).
ParsedRequest parse_request(Endpoint endpoint, std::string_view body,
                            const std::string& default_model);

}  // namespace ember::server
