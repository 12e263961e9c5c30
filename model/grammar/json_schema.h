// JSON Schema → Grammar (grammar.h): the structured output of response_format `json_schema` and
// `json_object` and Ollama's `format`. Whitespace between tokens is at most one space or newline,
// so a model cannot loop on blanks. Supported: type (one or a list) object / array / string /
// number / integer / boolean / null; enum; const; properties, required (the others optional, in
// the order `properties` lists them; no other property is ever produced, which every
// additionalProperties setting allows); items, minItems, maxItems; anyOf, oneOf; $ref to
// #/$defs/… or #/definitions/… (recursion allowed); string minLength, maxLength, format date,
// date-time, time, uuid, email. Annotations (title, description, default, examples, $schema,
// $id, $comment, additionalProperties, strict) change nothing. Any other keyword is a
// SchemaError naming it: a schema is never silently loosened.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

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

// Any JSON object (response_format json_object, Ollama's format "json").
Grammar json_object_grammar();
// The values `schema` accepts. Throws SchemaError.
Grammar grammar_from_schema(const nlohmann::json& schema);

}  // namespace ember::grammar
