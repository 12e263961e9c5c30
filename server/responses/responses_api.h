// OpenAI's Responses API (POST /v1/responses), stateless: the body (input as a string or items —
// messages, function_call, function_call_output —, instructions, max_output_tokens, tools,
// tool_choice, text.format) is checked and turned into the chat body api_request.cpp reads; the
// answer is a Response object (output items: reasoning, message with output_text, function_call)
// or its event stream (response.created … response.completed). Nothing is stored:
// previous_response_id is a 400 and every Response says "store": false.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "server/api_request.h"
#include "server/http/server.h"
#include "server/scheduler.h"

namespace ember::server::responses {

// The OpenAI chat body for a Responses body. Throws ApiError (400) naming the field.
nlohmann::ordered_json to_chat_body(const nlohmann::ordered_json& body);

// The sink of /v1/responses; `body` is the request's (its settings are echoed in the Response).
std::shared_ptr<JobSink> make_sink(std::shared_ptr<http::Responder> responder,
                                   const ParsedRequest& request, nlohmann::ordered_json body);

}  // namespace ember::server::responses
