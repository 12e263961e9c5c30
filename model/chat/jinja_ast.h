// The syntax tree of a parsed Jinja template (internal to model/jinja_*.cpp).
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
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kBreak, kContinue, kBlock };
  Kind kind;
  std::string text;   // kText
  ExprPtr expr;       // kOutput, kSet value, kFor iterable, kFor filter (cond)
  ExprPtr condition;  // kFor: `if` filter
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: (condition, body)...
  Body body, else_body;              // kFor, kSetBlock, kMacro, kBlock; else: kIf, kFor
  std::vector<std::string> targets;  // kFor / kSet names; kSet with attribute: {object, attribute}
  bool attribute_target = false;     // kSet: `set ns.attr = ...`
  std::string name;                  // kMacro, kSetBlock
  std::vector<std::pair<std::string, ExprPtr>> params;  // kMacro: name, default (may be null)
  size_t line = 0;
};

// Parses template source with jinja2's settings for chat templates (trim_blocks and
// lstrip_blocks on, as transformers uses). Throws jinja::Error with the line on bad syntax.
Body parse_template(const std::string& source);

}  // namespace ember::chat::jinja
