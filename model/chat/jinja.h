// A Jinja template interpreter for the chat templates models ship in tokenizer.chat_template.
// It implements Jinja as chat templates use it (expressions, jinja2's filters and tests, string
// and dict methods, for/if/set/macro/call/filter/with/raw, namespaces, loop variables,
// whitespace control) with the settings transformers renders them with; Python's jinja2 is the
// reference for the output, and for which inputs a template refuses.
#pragma once

#include <memory>
#include <string>

#include "model/chat/jinja_value.h"

namespace ember::chat::jinja {

struct Stmt;

// How much work one render may do before it fails with jinja::Error. Templates come from model
// files, so a hostile or broken one must not hang or exhaust the server.
struct RenderLimits {
  // Work units: one per statement, loop iteration and expression evaluated, plus one per 64
  // bytes of every string produced. A long chat renders in a few thousand.
  int64_t max_work = 5'000'000;
};

class Template {
 public:
  // Throws jinja::Error on a syntax error.
  explicit Template(const std::string& source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the variables of `context` (a dict) plus the built-in globals (range, dict,
  // namespace, cycler, joiner, raise_exception, strftime_now). Throws jinja::Error, including
  // the message of raise_exception(), wherever jinja2 raises.
  std::string render(const Value& context, const RenderLimits& limits = {}) const;

 private:
  struct Parsed;
  std::unique_ptr<Parsed> parsed_;
};

}  // namespace ember::chat::jinja
