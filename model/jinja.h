// A Jinja template interpreter for the chat templates models ship in tokenizer.chat_template.
// It implements the part of Jinja those templates use (expressions, filters, tests, string and
// dict methods, for/if/set/macro, namespaces, loop variables, whitespace control) with the
// settings transformers renders them with; Python's jinja2 is the reference for the output.
#pragma once

#include <memory>
#include <string>

#include "model/jinja_value.h"

namespace ember::jinja {

struct Stmt;

class Template {
 public:
  // Throws jinja::Error on a syntax error.
  explicit Template(const std::string& source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the variables of `context` (a dict) plus the built-in globals (range,
  // namespace, raise_exception, strftime_now, dict). Throws jinja::Error, including the message
  // of raise_exception().
  std::string render(const Value& context) const;

 private:
  struct Parsed;
  std::unique_ptr<Parsed> parsed_;
};

}  // namespace ember::jinja
