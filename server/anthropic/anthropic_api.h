// Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens) as its reference
// describes it: a Messages body is checked and turned into the OpenAI chat body that
// api_request.cpp reads (system, text / tool_use / tool_result blocks, tools with input_schema,
// tool_choice auto / any / tool / none, stop_sequences, thinking), and the answer goes out as a
// Message or as Anthropic's event stream (message_start, content_block_start / delta / stop,
// message_delta with stop_reason and usage, message_stop). Errors have Anthropic's shape.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "server/api_request.h"
#include "server/http/server.h"
#include "server/scheduler.h"

namespace ember::server::anthropic {

// The OpenAI chat body for a Messages body (count: count_tokens', which has no max_tokens).
// Throws ApiError (400) naming the field at fault.
nlohmann::ordered_json to_chat_body(const nlohmann::ordered_json& body, bool count);

// Whether a Messages body asks for thinking (`thinking.type` enabled or adaptive).
bool thinking_requested(const nlohmann::ordered_json& body);

// The sink of /v1/messages, or of count_tokens ({"input_tokens": N}). Without `thinking`,
// reasoning the model writes anyway is left out, as Anthropic's API leaves it out.
std::shared_ptr<JobSink> make_sink(std::shared_ptr<http::Responder> responder,
                                   const ParsedRequest& request, bool count, bool thinking);

// {"type": "error", "error": {"type": T, "message": M}}, T from the status
// (invalid_request_error, authentication_error, not_found_error, overloaded_error, api_error).
std::string error_body(int status, const std::string& message);

}  // namespace ember::server::anthropic
