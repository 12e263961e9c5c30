// libFuzzer target for structured output: bytes up to the first NUL as a JSON Schema (requests
// carry them), compiled to a grammar, then the rest fed to the recognizer. Malformed or
// unsupported schemas must fail cleanly (grammar::SchemaError, a JSON parse error, or
// GrammarTooComplex for a pattern too ambiguous to follow), never crash, hang or exhaust memory.
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "model/grammar/json_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint8_t* end = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t schema_size = end ? static_cast<size_t>(end - data) : size;
  nlohmann::json schema = nlohmann::json::parse(data, data + schema_size, nullptr, false);
  if (schema.is_discarded()) return 0;
  try {
    ember::grammar::Grammar g = ember::grammar::grammar_from_schema(schema);
    ember::grammar::Matcher m(g);
    for (size_t i = schema_size + 1; i < size; ++i)
      if (!m.advance(data[i])) break;
    (void)m.accepting();
  } catch (const ember::grammar::SchemaError&) {
  } catch (const ember::grammar::GrammarTooComplex&) {  // a 400 in the server, as it should be
  }
  return 0;
}
