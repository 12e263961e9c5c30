// Ollama's API as its docs/api.md describes it: the answers of /api/chat and /api/generate
// (NDJSON lines while streaming, one object otherwise, durations in nanoseconds), /api/show,
// /api/ps and /api/version, and its error shape {"error": "..."}. Request bodies are read by
// api_request.cpp with the other APIs' (Endpoint::kOllamaChat, kNativeGenerate).
#pragma once

#include <memory>
#include <string>

#include "server/api_request.h"
#include "server/http/server.h"
#include "server/model_registry.h"
#include "server/scheduler.h"

namespace ember::server::ollama {

// The sink that answers /api/chat (endpoint kOllamaChat) or /api/generate (kNativeGenerate).
// A non-streamed /api/generate answer also carries OpenAI-style `choices` and `usage`, which
// ember's earlier clients read.
std::shared_ptr<JobSink> make_sink(std::shared_ptr<http::Responder> responder, Endpoint endpoint,
                                   const ParsedRequest& request);

// {"error": message}.
std::string error_body(const std::string& message);

// /api/show for a model: details, model_info (the GGUF metadata; arrays of more than 64 items
// summarised unless `verbose`), the chat template, capabilities (completion, tools when the
// template renders them, thinking when it knows <think>). Throws when the file cannot be read.
std::string show(const ModelEntry& model, bool verbose);

// /api/ps: the loaded models with size and expires_at (RFC 3339; far in the future for a model
// that stays loaded).
std::string ps(const std::vector<LoadedModel>& loaded, const ModelRegistry& registry);

// A line of ember's pull progress (docs/API.md, Pulls) as Ollama's clients expect it:
// "pulling manifest", "pulling <file>" with digest/total/completed, "verifying sha256 digest",
// "success", or {"error"}; empty when the line has no Ollama counterpart (skip it).
std::string pull_line(const std::string& ember_line);

// /api/tags' and /api/show's `details`.
nlohmann::ordered_json details(const ModelEntry& model);

// A time as Ollama writes it: 2024-05-01T12:00:00.123456Z.
std::string rfc3339(double unix_seconds);

}  // namespace ember::server::ollama
