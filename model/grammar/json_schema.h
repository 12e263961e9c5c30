// JSON Schema → Grammar (grammar.h): the structured output of response_format `json_schema` and
// `json_object` and Ollama's `format`. Whitespace between tokens is at most one space or newline,
// so a model cannot loop on blanks, and numbers have at most 16 digits in the integer part and
// the fraction and 2 in the exponent, so it cannot loop on digits either. Supported: type (one or a
// list) object / array / string / number / integer / boolean / null; enum; const; properties,
// required (the others optional, in the order `properties` lists them; no other property is ever
// produced, which every additionalProperties setting allows); items, minItems, maxItems; anyOf,
// oneOf; $ref to
// #/$defs/… or #/definitions/… (recursion allowed); string minLength, maxLength, pattern (the
// regular subset regex.h lists; one of these three kinds per string), format date, date-time,
// time, uuid, email. Annotations (title, description, default, examples, $schema,
// $id, $comment, additionalProperties, strict) change nothing. Any other keyword is a
// SchemaError naming it: a schema is never silently loosened.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/grammar/grammar.h"

namespace ember::grammar {

class SchemaError : public std::runtime_error {
 public:
  SchemaError(std::string keyword, const std::string& message)
      : std::runtime_error(message), keyword_(std::move(keyword)) {}
  const std::string& keyword() const { return keyword_; }

 private:
  std::string keyword_;
};

// Text interleaved with JSON values, as a model writes a tool call: each piece is fixed text, or
// (schema set) a value that schema accepts; the schema must outlive the call.
struct Piece {
  std::string text;
  const nlohmann::ordered_json* schema = nullptr;
};
using Form = std::vector<Piece>;
// How items are put together: prefix item (separator item)… suffix, with 1 to max_items items
// (0: any number).
struct Framing {
  std::string prefix, separator, suffix;
  int max_items = 1;
};

// Any JSON object (response_format json_object, Ollama's format "json").
Grammar json_object_grammar();
// The values `schema` accepts. Throws SchemaError.
Grammar grammar_from_schema(const nlohmann::ordered_json& schema);
// Items that each take one of `forms`, framed by `framing`, after an optional blank (the
// forced tool calls of chat/tool_calls.h). Throws SchemaError for a schema it cannot honour.
Grammar grammar_from_forms(const std::vector<Form>& forms, const Framing& framing);

}  // namespace ember::grammar
