// libFuzzer target for request bodies of the generation endpoints: any bytes as the JSON body
// of each endpoint (Anthropic's Messages and OpenAI's Responses through their translation to a
// chat body) either become
// a Job or an ApiError with a 4xx status — never a crash or another exception.
#include <cstdint>
#include <string_view>

#include "server/anthropic/anthropic_api.h"
#include "server/api_request.h"
#include "server/responses/responses_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ember::server;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  for (Endpoint e : {Endpoint::kChat, Endpoint::kCompletion, Endpoint::kNativeGenerate,
                     Endpoint::kShimmyGenerate, Endpoint::kOllamaChat, Endpoint::kEmbeddings,
                     Endpoint::kOllamaEmbed, Endpoint::kOllamaEmbeddings}) {
    try {
      ParsedRequest r = parse_request(e, body, "default-model");
      if (r.job.model.empty()) __builtin_trap();
    } catch (const ApiError& err) {
      if (err.status < 400 || err.status > 499) __builtin_trap();
    }
  }
  const auto json = nlohmann::ordered_json::parse(body, nullptr, false);
  if (json.is_discarded()) return 0;
  for (int api = 0; api < 3; ++api) {
    try {
      const std::string chat = api == 2 ? responses::to_chat_body(json).dump()
                                        : anthropic::to_chat_body(json, api == 1).dump();
      ParsedRequest r = parse_request(Endpoint::kChat, chat, "default-model");
      if (r.job.model.empty()) __builtin_trap();
    } catch (const ApiError& err) {
      if (err.status < 400 || err.status > 499) __builtin_trap();
    }
  }
  return 0;
}
