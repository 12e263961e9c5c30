// GGUF metadata values as JSON, for `ember inspect --json` and Ollama's /api/show (model_info).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "gguf/value.h"

namespace ember::server {

// Arrays longer than `summarise_over` become {"type": "array", "element_type": T, "length": N}
// (a vocabulary would otherwise be megabytes); 0: always in full.
nlohmann::ordered_json gguf_value_json(const gguf::Value& v, uint64_t summarise_over);

}  // namespace ember::server
