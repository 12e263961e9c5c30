// The answers of the embedding routes: OpenAI's /v1/embeddings ({"object": "list", "data":
// [{"embedding"}], "usage"}, floats or base64 of little-endian float32), Ollama's /api/embed
// ({"embeddings": [[…]], durations}) and its older /api/embeddings ({"embedding": […]}).
// Requests are read by api_request.cpp (Endpoint::kEmbeddings, kOllamaEmbed, kOllamaEmbeddings);
// the vectors come from Scheduler::embed.
#pragma once

#include <memory>

#include "server/api_request.h"
#include "server/http/server.h"
#include "server/scheduler.h"

namespace ember::server::embeddings {

std::shared_ptr<JobSink> make_sink(std::shared_ptr<http::Responder> responder, Endpoint endpoint,
                                   const ParsedRequest& request);

}  // namespace ember::server::embeddings
