// The syntax tree of a parsed Jinja template (internal to model/chat/jinja_*.cpp).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/chat/jinja_value.h"

namespace ember::chat::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,      // value
    kName,         // name
    kAttr,         // a.name
    kItem,         // a[b]
    kSlice,        // a[b:c:d] (args: start, stop, step; null when absent)
    kCall,         // a(args, kwargs)
    kFilter,       // a | name(args, kwargs)
    kTest,         // a is [not] name(args)
    kUnary,        // op a   ("not", "-", "+")
    kBinary,       // a op b
    kCompare,      // a op b op c ... (ops holds the operators)
    kConditional,  // a if b else c  (args: then, condition, otherwise)
    kList,         // [args]
    kTuple,        // (args)
    kDict,         // {keys[i]: args[i]}
    kBlockValue,   // what a {% filter %} or {% set x | f %} block rendered (the filters' input)
  };
  Kind kind;
  Value value;
  std::string name;  // name, attribute, filter, test, operator
  bool negated = false;
  ExprPtr target;  // the operand of attr, item, slice, call, filter, test, unary
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<ExprPtr> keys;
  std::vector<std::string> ops;
  size_t line = 0;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,
    kOutput,
    kIf,
    kFor,
    kSet,
    kSetBlock,
    kMacro,
    kBreak,
    kContinue,
    kBlock,
    kFilterBlock,  // {% filter f %}body{% endfilter %}: expr is the filter chain
    kCallBlock,    // {% call(params) expr %}body{% endcall %}: body becomes caller()
    kWith,         // {% with targets = values %}body{% endwith %}
  };
  Kind kind;
  std::string text;   // kText
  ExprPtr expr;       // kOutput, kSet value, kFor iterable, kCallBlock call, filter chain of
                      // kFilterBlock and kSetBlock (null when the set block has none)
  ExprPtr condition;  // kFor: `if` filter
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: (condition, body)...
  Body body, else_body;              // kFor, kSetBlock, kMacro, kBlock, ...; else: kIf, kFor
  std::vector<std::string> targets;  // kFor / kSet / kWith names; kSet with attribute:
                                     // {object, attribute}
  std::vector<ExprPtr> values;       // kWith: one per target; kOutput of {% print a, b %}
  bool attribute_target = false;     // kSet: `set ns.attr = ...`
  bool recursive = false;            // kFor: `loop(items)` renders the body again
  std::string name;                  // kMacro, kSetBlock
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro, kCallBlock: name, default
  // kMacro / kCallBlock: whether the body reads `varargs` or `kwargs` (then extra arguments
  // land there instead of failing, as in jinja2) or `caller`.
  bool catch_varargs = false, catch_kwargs = false, uses_caller = false;
  size_t line = 0;
};

// Parses template source with jinja2's settings for chat templates (trim_blocks and
// lstrip_blocks on, as transformers uses). Throws jinja::Error with the line on bad syntax.
Body parse_template(const std::string& source);

}  // namespace ember::chat::jinja
