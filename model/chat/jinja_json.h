// JSON ↔ Jinja values, for request bodies and test contexts. Kept apart so that only the code
// that handles JSON includes nlohmann-json.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "model/chat/jinja_value.h"

namespace ember::chat::jinja {

// ordered_json keeps keys in document order, as Python dicts do (it shows in tojson output).
Value from_json(const nlohmann::ordered_json& j);

}  // namespace ember::chat::jinja
