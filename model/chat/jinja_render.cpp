// Evaluation of a parsed template: expressions, statements, and the built-in filters, tests,
// methods and globals that chat templates use.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <functional>
#include <stdexcept>
#include <unordered_map>

#include "model/chat/jinja.h"
#include "model/chat/jinja_ast.h"

namespace ember::chat::jinja {

struct Template::Parsed {
  Body body;
};

namespace {

enum class Flow { kNormal, kBreak, kContinue };

// Limits that keep a hostile or broken template from hanging or exhausting the server.
// The work budget (RenderLimits) bounds time; these bound memory and recursion.
constexpr int kMaxCallDepth = 64;             // nested macro calls
constexpr int64_t kMaxRange = 1000000;        // elements of one range()
constexpr int64_t kMaxStoredNodes = 1 << 20;  // list/dict elements reachable from one variable

int64_t negate(int64_t v) {
  if (v == INT64_MIN) throw Error("integer overflow in -");
  return -v;
}

// base ** exponent for exponent >= 0, failing on overflow (Python's integers have no bound).
int64_t int_power(int64_t base, int64_t exponent) {
  int64_t result = 1;
  while (exponent > 0) {
    if (exponent & 1)
      if (__builtin_mul_overflow(result, base, &result)) throw Error("integer overflow in **");
    exponent >>= 1;
    if (exponent > 0 && __builtin_mul_overflow(base, base, &base))
      throw Error("integer overflow in **");
  }
  return result;
}

// Throws unless a string of `bytes` may be built.
void check_string_size(size_t bytes) {
  if (bytes > kMaxStringBytes) throw Error("a string in the template grows too large");
}

std::string strip(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t b = 0, e = s.size();
  auto in_set = [&](char c) {
    return chars.empty() ? std::isspace(static_cast<unsigned char>(c)) != 0
                         : chars.find(c) != std::string::npos;
  };
  if (left)
    while (b < e && in_set(s[b])) ++b;
  if (right)
    while (e > b && in_set(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Python's str.replace: at most `count` (all when negative) non-overlapping occurrences.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count = -1) {
  std::string out;
  if (from.empty()) {  // `to` goes before every character and at the end
    for (size_t i = 0; i <= s.size(); ++i) {
      const bool boundary = i == s.size() || (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80;
      if (boundary && count != 0) {
        out += to;
        check_string_size(out.size());
        if (count > 0) --count;
      }
      if (i < s.size()) out += s[i];
    }
    return out;
  }
  size_t done = 0, pos;
  while (count != 0 && (pos = s.find(from, done)) != std::string::npos) {
    out.append(s, done, pos - done).append(to);
    check_string_size(out.size());
    done = pos + from.size();
    if (count > 0) --count;
  }
  out.append(s, done, std::string::npos);
  check_string_size(out.size());
  return out;
}

std::string to_upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string to_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string capitalize(const std::string& s) {
  std::string out = to_lower(s);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}
std::string title(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
      start = false;
    } else {
      start = true;
    }
  }
  return out;
}

Array split(const std::string& s, const Value& sep, int64_t max_split) {
  Array out;
  if (sep.is_undefined() || sep.is_none()) {  // runs of whitespace, no empty pieces
    size_t i = 0;
    while (i < s.size()) {
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) break;
      if (max_split >= 0 && static_cast<int64_t>(out.size()) == max_split) {
        out.emplace_back(strip(s.substr(i), "", false, true));
        return out;
      }
      size_t j = i;
      while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
      out.emplace_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  const std::string& d = sep.as_string();
  if (d.empty()) throw Error("empty separator");
  size_t pos = 0;
  for (;;) {
    size_t hit = s.find(d, pos);
    if (hit == std::string::npos ||
        (max_split >= 0 && static_cast<int64_t>(out.size()) == max_split)) {
      out.emplace_back(s.substr(pos));
      return out;
    }
    out.emplace_back(s.substr(pos, hit - pos));
    pos = hit + d.size();
  }
}

// Python-style slicing of a list or string.
Value slice(const Value& v, const Value& start, const Value& stop, const Value& step) {
  int64_t n = static_cast<int64_t>(v.is_string() ? v.as_string().size() : v.array().size());
  int64_t st = step.is_undefined() || step.is_none() ? 1 : step.as_int();
  if (st == 0) throw Error("slice step cannot be zero");
  auto clamp = [&](const Value& x, int64_t fallback) {
    if (x.is_undefined() || x.is_none()) return fallback;
    int64_t i = x.as_int();
    if (i < 0) i += n;
    return st > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
  };
  int64_t b = clamp(start, st > 0 ? 0 : n - 1), e = clamp(stop, st > 0 ? n : -1);
  if (v.is_string()) {
    std::string out;
    for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out += v.as_string()[i];
    return Value(out);
  }
  Array out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(v.array()[i]);
  return Value(out);
}

// Items of anything iterable: list elements, dict keys, string characters.
Array iterate(const Value& v) {
  if (v.is_array()) return v.array();
  if (v.is_object()) {
    Array keys;
    for (const auto& [k, _] : v.obj().items) keys.emplace_back(k);
    return keys;
  }
  if (v.is_string()) {
    Array chars;
    const std::string& s = v.as_string();
    for (size_t i = 0; i < s.size();) {
      size_t n = 1;
      unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0xf0)
        n = 4;
      else if (c >= 0xe0)
        n = 3;
      else if (c >= 0xc0)
        n = 2;
      chars.emplace_back(s.substr(i, n));
      i += n;
    }
    return chars;
  }
  if (v.is_undefined() || v.is_none()) return {};
  throw Error("'" + v.type_name() + "' object is not iterable");
}

Value items_of(const Value& v) {
  if (!v.is_object()) throw Error("items() needs a dict, got " + v.type_name());
  Array out;
  for (const auto& [k, val] : v.obj().items) out.emplace_back(Array{Value(k), val});
  return Value(out);
}

class Renderer {
 public:
  Renderer(const Value& context, const RenderLimits& limits) : limits_(limits) {
    scopes_.emplace_back();
    install_globals();
    if (context.is_object())
      for (const auto& [k, v] : context.obj().items) scopes_.back()[k] = v;
  }

  void render(const Body& body, std::string& out) {
    if (exec(body, out) != Flow::kNormal) throw Error("break or continue outside a loop");
  }

 private:
  using Scope = std::unordered_map<std::string, Value>;
  std::vector<Scope> scopes_;
  RenderLimits limits_;
  int64_t work_ = 0;
  int call_depth_ = 0;

  void charge(int64_t units) {
    work_ += units;
    if (work_ > limits_.max_work) throw Error("template takes too much work to render");
  }

  // A value about to be stored in a variable or namespace: its nesting and size stay bounded
  // (so printing, comparing and freeing it cannot recurse without end), and a namespace never
  // ends up inside itself (a cycle would never be freed).
  void check_storable(const Value& v, const Object* target) {
    int64_t nodes = 0;
    std::function<void(const Value&, int)> visit = [&](const Value& x, int depth) {
      if (depth > kMaxNesting) throw Error("a value in the template is nested too deeply");
      if (x.is_array()) {
        nodes += static_cast<int64_t>(x.array().size());
        if (nodes > kMaxStoredNodes) throw Error("a value in the template grows too large");
        charge(static_cast<int64_t>(x.array().size()) / 8 + 1);
        for (const Value& item : x.array()) visit(item, depth + 1);
      } else if (x.is_object()) {
        if (&x.obj() == target) throw Error("a namespace cannot contain itself");
        nodes += static_cast<int64_t>(x.obj().items.size());
        if (nodes > kMaxStoredNodes) throw Error("a value in the template grows too large");
        charge(static_cast<int64_t>(x.obj().items.size()) / 8 + 1);
        for (const auto& item : x.obj().items) visit(item.second, depth + 1);
      }
    };
    visit(v, 0);
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value();
  }
  void assign(const std::string& name, Value v) { scopes_.back()[name] = std::move(v); }

  void install_globals() {
    Scope& g = scopes_.back();
    g["range"] = Value::function([](CallArgs& a) {
      int64_t start = 0, stop, step = 1;
      if (a.positional.size() == 1)
        stop = a.positional[0].as_int();
      else if (a.positional.size() >= 2)
        start = a.positional[0].as_int(), stop = a.positional[1].as_int();
      else
        throw Error("range() needs arguments");
      if (a.positional.size() >= 3) step = a.positional[2].as_int();
      if (step == 0) throw Error("range() step cannot be zero");
      Array out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (static_cast<int64_t>(out.size()) >= kMaxRange) throw Error("range() too large");
        out.emplace_back(i);
      }
      return Value(out);
    });
    g["namespace"] = Value::function([](CallArgs& a) {
      Value ns = Value::make_namespace();
      if (!a.positional.empty() && a.positional[0].is_object())
        for (const auto& [k, v] : a.positional[0].obj().items) ns.obj().set(k, v);
      for (const auto& [k, v] : a.keyword) ns.obj().set(k, v);
      return ns;
    });
    g["dict"] = Value::function([](CallArgs& a) {
      Value d = Value::object();
      for (const auto& [k, v] : a.keyword) d.obj().set(k, v);
      return d;
    });
    g["raise_exception"] = Value::function([](CallArgs& a) -> Value {
      throw Error(a.positional.empty() ? "raise_exception() called" : a.positional[0].str());
    });
    g["strftime_now"] = Value::function([](CallArgs& a) {
      std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buf[128];
      std::string format = a.positional.empty() ? "%Y-%m-%d" : a.positional[0].str();
      size_t n = std::strftime(buf, sizeof buf, format.c_str(), &local);
      return Value(std::string(buf, n));
    });
  }

  // ---- statements ----

  Flow exec(const Body& body, std::string& out) {
    for (const StmtPtr& s : body) {
      Flow f = exec(*s, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    charge(1);
    check_string_size(out.size());
    switch (s.kind) {
      case Stmt::Kind::kText:
        out += s.text;
        return Flow::kNormal;
      case Stmt::Kind::kOutput:
        out += eval(*s.expr).str();
        return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches)
          if (eval(*cond).truthy()) return exec(body, out);
        return exec(s.else_body, out);
      case Stmt::Kind::kFor:
        return exec_for(s, out);
      case Stmt::Kind::kSet: {
        Value v = eval(*s.expr);
        if (s.attribute_target) {
          Value target = lookup(s.targets[0]);
          if (!target.is_namespace())
            throw Error("cannot assign attribute '" + s.targets[1] + "' of " + target.type_name());
          check_storable(v, &target.obj());
          target.obj().set(s.targets[1], v);
        } else if (s.targets.size() == 1) {
          check_storable(v, nullptr);
          assign(s.targets[0], v);
        } else {
          Array parts = iterate(v);
          if (parts.size() != s.targets.size())
            throw Error("cannot unpack " + std::to_string(parts.size()) + " values");
          for (size_t i = 0; i < parts.size(); ++i) {
            check_storable(parts[i], nullptr);
            assign(s.targets[i], parts[i]);
          }
        }
        return Flow::kNormal;
      }
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        scopes_.emplace_back();
        exec(s.body, captured);
        scopes_.pop_back();
        assign(s.name, Value(captured));
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro: {
        const Stmt* macro = &s;
        assign(s.name, Value::function([this, macro](CallArgs& a) {
                 if (call_depth_ >= kMaxCallDepth) throw Error("macro calls nested too deeply");
                 Scope scope;
                 for (size_t i = 0; i < macro->params.size(); ++i) {
                   const auto& [name, fallback] = macro->params[i];
                   Value v = a.get(i, name);
                   if (v.is_undefined() && fallback) v = eval(*fallback);
                   scope[name] = v;
                 }
                 scopes_.push_back(std::move(scope));
                 ++call_depth_;
                 std::string result;
                 exec(macro->body, result);
                 --call_depth_;
                 scopes_.pop_back();
                 return Value(result);
               }));
        return Flow::kNormal;
      }
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
      case Stmt::Kind::kBlock:
        return exec(s.body, out);
    }
    return Flow::kNormal;
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    Value iterable = eval(*s.expr);
    Array items = iterate(iterable);
    if (s.condition) {  // `for x in xs if cond`: filter first, so loop.* counts what remains
      Array kept;
      for (const Value& item : items) {
        scopes_.emplace_back();
        bind_targets(s, item);
        if (eval(*s.condition).truthy()) kept.push_back(item);
        scopes_.pop_back();
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, out);
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      charge(1);
      scopes_.emplace_back();
      bind_targets(s, items[i]);
      Value loop = Value::object();
      Object& l = loop.obj();
      l.set("index", Value(i + 1));
      l.set("index0", Value(i));
      l.set("revindex", Value(n - i));
      l.set("revindex0", Value(n - i - 1));
      l.set("first", Value(i == 0));
      l.set("last", Value(i == n - 1));
      l.set("length", Value(n));
      l.set("previtem", i > 0 ? items[i - 1] : Value());
      l.set("nextitem", i + 1 < n ? items[i + 1] : Value());
      l.set("cycle", Value::function([i](CallArgs& a) {
              if (a.positional.empty()) throw Error("loop.cycle() needs arguments");
              return a.positional[static_cast<size_t>(i) % a.positional.size()];
            }));
      assign("loop", loop);
      Flow f = exec(s.body, out);
      scopes_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  void bind_targets(const Stmt& s, const Value& item) {
    if (s.targets.size() == 1) {
      assign(s.targets[0], item);
      return;
    }
    Array parts = iterate(item);
    if (parts.size() != s.targets.size())
      throw Error("cannot unpack " + std::to_string(parts.size()) + " values in for loop");
    for (size_t i = 0; i < parts.size(); ++i) assign(s.targets[i], parts[i]);
  }

  // ---- expressions ----

  CallArgs eval_args(const Expr& e) {
    CallArgs a;
    for (const ExprPtr& arg : e.args) a.positional.push_back(eval(*arg));
    for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v));
    return a;
  }

  // Every evaluation is charged to the work budget, strings and lists by their size.
  Value eval(const Expr& e) {
    Value v = eval_uncharged(e);
    if (v.is_string()) {
      check_string_size(v.as_string().size());
      charge(1 + static_cast<int64_t>(v.as_string().size() / 64));
    } else if (v.is_array()) {
      charge(1 + static_cast<int64_t>(v.array().size() / 8));
    } else {
      charge(1);
    }
    return v;
  }

  Value eval_uncharged(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return lookup(e.name);
      case Expr::Kind::kAttr: {
        Value target = eval(*e.target);
        Value direct = target.attr(e.name);
        if (!direct.is_undefined()) return direct;
        return method(target, e.name);
      }
      case Expr::Kind::kItem: {
        Value target = eval(*e.target);
        Value key = eval(*e.args[0]);
        Value v = target.get(key);
        if (v.is_undefined() && key.is_string() && !target.is_object())
          return method(target, key.as_string());
        return v;
      }
      case Expr::Kind::kSlice: {
        Value target = eval(*e.target);
        if (!target.is_array() && !target.is_string())
          throw Error("cannot slice " + target.type_name());
        auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value(); };
        return slice(target, part(0), part(1), part(2));
      }
      case Expr::Kind::kCall: {
        Value callee = eval(*e.target);
        if (!callee.is_function())
          throw Error("'" + callee.type_name() + "' object is not callable (line " +
                      std::to_string(e.line) + ")");
        CallArgs a = eval_args(e);
        return callee.fn()(a);
      }
      case Expr::Kind::kFilter: {
        Value target = eval(*e.target);
        CallArgs a = eval_args(e);
        return filter(e.name, target, a);
      }
      case Expr::Kind::kTest: {
        Value target = eval(*e.target);
        CallArgs a = eval_args(e);
        bool r = test(e.name, target, a);
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::kUnary: {
        Value v = eval(*e.target);
        if (e.name == "not") return Value(!v.truthy());
        if (e.name == "-")
          return v.kind() == Value::Kind::kFloat ? Value(-v.as_double())
                                                 : Value(negate(v.as_int()));
        return v;
      }
      case Expr::Kind::kBinary:
        return binary(e);
      case Expr::Kind::kCompare: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1]);
          if (!compare(e.ops[i], left, right)) return Value(false);
          left = right;
        }
        return Value(true);
      }
      case Expr::Kind::kConditional:
        if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value();
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        Array items;
        for (const ExprPtr& a : e.args) items.push_back(eval(*a));
        return Value(items);
      }
      case Expr::Kind::kDict: {
        Value d = Value::object();
        for (size_t i = 0; i < e.keys.size(); ++i)
          d.obj().set(eval(*e.keys[i]).str(), eval(*e.args[i]));
        return d;
      }
    }
    return Value();
  }

  static bool contains(const Value& haystack, const Value& needle) {
    if (haystack.is_string()) return haystack.as_string().find(needle.str()) != std::string::npos;
    if (haystack.is_object())
      return needle.is_string() && haystack.obj().find(needle.as_string()) != nullptr;
    if (haystack.is_array()) {
      for (const Value& v : haystack.array())
        if (v.equals(needle)) return true;
      return false;
    }
    if (haystack.is_undefined() || haystack.is_none()) return false;
    throw Error("argument of type '" + haystack.type_name() + "' is not iterable");
  }

  static bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return a.equals(b);
    if (op == "!=") return !a.equals(b);
    if (op == "in") return contains(b, a);
    if (op == "not in") return !contains(b, a);
    int c = a.compare(b);
    if (op == "<") return c < 0;
    if (op == ">") return c > 0;
    if (op == "<=") return c <= 0;
    return c >= 0;
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value l = eval(*e.args[0]);
      return l.truthy() ? eval(*e.args[1]) : l;
    }
    if (op == "or") {
      Value l = eval(*e.args[0]);
      return l.truthy() ? l : eval(*e.args[1]);
    }
    Value l = eval(*e.args[0]), r = eval(*e.args[1]);
    if (op == "~") return Value(l.str() + r.str());
    if (op == "+") {
      if (l.is_string() && r.is_string()) return Value(l.as_string() + r.as_string());
      if (l.is_array() && r.is_array()) {
        Array out = l.array();
        out.insert(out.end(), r.array().begin(), r.array().end());
        return Value(out);
      }
    }
    if (op == "*" && l.is_string() && r.is_int()) {
      if (r.as_int() > 0)
        check_string_size(l.as_string().size() * static_cast<uint64_t>(r.as_int()));
      const size_t total = r.as_int() > 0 ? l.as_string().size() * r.as_int() : 0;
      std::string out;
      out.reserve(total);
      out = l.as_string().substr(0, total);
      while (out.size() < total) out.append(out, 0, std::min(out.size(), total - out.size()));
      return Value(out);
    }
    if (!l.is_number() || !r.is_number())
      throw Error("unsupported operand types for " + op + ": '" + l.type_name() + "' and '" +
                  r.type_name() + "'");
    bool floats = l.kind() == Value::Kind::kFloat || r.kind() == Value::Kind::kFloat;
    if (op == "/") {
      if (r.as_double() == 0) throw Error("division by zero");
      return Value(l.as_double() / r.as_double());
    }
    if (op == "**") {
      if (floats || r.as_int() < 0) return Value(std::pow(l.as_double(), r.as_double()));
      return Value(int_power(l.as_int(), r.as_int()));
    }
    if (floats) {
      double a = l.as_double(), b = r.as_double();
      if (op == "+") return Value(a + b);
      if (op == "-") return Value(a - b);
      if (op == "*") return Value(a * b);
      if (b == 0) throw Error("division by zero");
      if (op == "//") return Value(std::floor(a / b));
      return Value(a - b * std::floor(a / b));  // Python's %
    }
    int64_t a = l.as_int(), b = r.as_int(), c;
    if (op == "+" || op == "-" || op == "*") {
      bool overflow = op == "+"   ? __builtin_add_overflow(a, b, &c)
                      : op == "-" ? __builtin_sub_overflow(a, b, &c)
                                  : __builtin_mul_overflow(a, b, &c);
      if (overflow) throw Error("integer overflow in " + op);
      return Value(c);
    }
    if (b == 0) throw Error("division by zero");
    if (b == -1) {  // the one quotient that can overflow
      if (a == INT64_MIN) throw Error("integer overflow in " + op);
      return Value(op == "//" ? -a : int64_t{0});
    }
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;  // floor division
    if (op == "//") return Value(q);
    return Value(a - b * q);
  }

  // ---- methods of strings, dicts and lists ----

  Value method(const Value& self, const std::string& name) {
    auto bind = [&](auto f) {
      Value captured = self;
      return Value::function([captured, f](CallArgs& a) { return f(captured, a); });
    };
    if (self.is_string()) {
      if (name == "startswith" || name == "endswith")
        return bind([name](const Value& s, CallArgs& a) {
          const std::string& str = s.as_string();
          Array options = a.get(0, "prefix").is_array() ? a.get(0, "prefix").array()
                                                        : Array{a.get(0, "prefix")};
          for (const Value& o : options) {
            const std::string& p = o.as_string();
            bool hit = name == "startswith"
                           ? str.compare(0, p.size(), p) == 0
                           : str.size() >= p.size() &&
                                 str.compare(str.size() - p.size(), p.size(), p) == 0;
            if (hit) return Value(true);
          }
          return Value(false);
        });
      if (name == "strip" || name == "lstrip" || name == "rstrip")
        return bind([name](const Value& s, CallArgs& a) {
          Value chars = a.get(0, "chars");
          std::string set = chars.is_string() ? chars.as_string() : "";
          return Value(strip(s.as_string(), set, name != "rstrip", name != "lstrip"));
        });
      if (name == "split")
        return bind([](const Value& s, CallArgs& a) {
          Value max = a.get(1, "maxsplit");
          return Value(
              split(s.as_string(), a.get(0, "sep"), max.is_undefined() ? -1 : max.as_int()));
        });
      if (name == "upper")
        return bind([](const Value& s, CallArgs&) { return Value(to_upper(s.as_string())); });
      if (name == "lower")
        return bind([](const Value& s, CallArgs&) { return Value(to_lower(s.as_string())); });
      if (name == "title")
        return bind([](const Value& s, CallArgs&) { return Value(title(s.as_string())); });
      if (name == "capitalize")
        return bind([](const Value& s, CallArgs&) { return Value(capitalize(s.as_string())); });
      if (name == "replace")
        return bind([](const Value& s, CallArgs& a) {
          Value count = a.get(2, "count");
          return Value(replace_all(s.as_string(), a.get(0, "old").str(), a.get(1, "new").str(),
                                   count.is_undefined() ? -1 : count.as_int()));
        });
      if (name == "join")
        return bind([](const Value& s, CallArgs& a) {
          std::string out;
          Array items = iterate(a.get(0, "iterable"));
          for (size_t i = 0; i < items.size(); ++i) {
            out += (i ? s.as_string() : "") + items[i].str();
            check_string_size(out.size());
          }
          return Value(out);
        });
      if (name == "find" || name == "count")
        return bind([name](const Value& s, CallArgs& a) {
          std::string needle = a.get(0, "sub").str();
          if (name == "find") {
            size_t p = s.as_string().find(needle);
            return Value(p == std::string::npos ? int64_t{-1} : static_cast<int64_t>(p));
          }
          int64_t n = 0;
          if (!needle.empty())
            for (size_t p = s.as_string().find(needle); p != std::string::npos;
                 p = s.as_string().find(needle, p + needle.size()))
              ++n;
          return Value(n);
        });
    }
    if (self.is_object()) {
      if (name == "items") return bind([](const Value& d, CallArgs&) { return items_of(d); });
      if (name == "keys") return bind([](const Value& d, CallArgs&) { return Value(iterate(d)); });
      if (name == "values")
        return bind([](const Value& d, CallArgs&) {
          Array out;
          for (const auto& [_, v] : d.obj().items) out.push_back(v);
          return Value(out);
        });
      if (name == "get")
        return bind([](const Value& d, CallArgs& a) {
          Value v = d.get(a.get(0, "key"));
          return v.is_undefined() ? a.get(1, "default", Value::none()) : v;
        });
    }
    return Value();
  }

  // ---- filters ----

  Value filter(const std::string& name, const Value& v, CallArgs& a) {
    if (name == "trim") {
      Value chars = a.get(0, "chars");
      return Value(strip(v.str(), chars.is_string() ? chars.as_string() : "", true, true));
    }
    if (name == "length" || name == "count") return Value(static_cast<int64_t>(v.length()));
    if (name == "upper") return Value(to_upper(v.str()));
    if (name == "lower") return Value(to_lower(v.str()));
    if (name == "title") return Value(title(v.str()));
    if (name == "capitalize") return Value(capitalize(v.str()));
    if (name == "string") return Value(v.str());
    if (name == "safe" || name == "escape" || name == "e")
      return name == "safe" ? v : Value(escape_html(v.str()));
    if (name == "int") {
      if (v.is_number()) return Value(v.as_int());
      try {
        size_t used = 0;
        const std::string text = strip(v.str(), "", true, true);
        const long long parsed = std::stoll(text, &used);
        if (used != text.size()) throw std::invalid_argument(text);
        return Value(static_cast<int64_t>(parsed));
      } catch (const std::exception&) {
        return a.get(0, "default", Value(int64_t{0}));
      }
    }
    if (name == "float") {
      if (v.is_number()) return Value(v.as_double());
      try {
        return Value(std::stod(v.str()));
      } catch (const std::exception&) {
        return a.get(0, "default", Value(0.0));
      }
    }
    if (name == "abs")
      return v.kind() == Value::Kind::kFloat
                 ? Value(std::fabs(v.as_double()))
                 : Value(negate(v.as_int()) < 0 ? v.as_int() : negate(v.as_int()));
    if (name == "round") {
      int64_t precision = a.get(0, "precision", Value(int64_t{0})).as_int();
      double scale = std::pow(10.0, static_cast<double>(precision));
      return Value(std::round(v.as_double() * scale) / scale);
    }
    if (name == "default" || name == "d") {
      bool boolean = a.get(1, "boolean", Value(false)).truthy();
      if (v.is_undefined() || (boolean && !v.truthy()))
        return a.get(0, "default_value", Value(std::string()));
      return v;
    }
    if (name == "tojson") {
      Value indent = a.get(0, "indent");
      const int64_t spaces = indent.is_undefined() || indent.is_none() ? -1 : indent.as_int();
      if (spaces > 1024) throw Error("tojson indent is too large");
      return Value(v.to_json(static_cast<int>(spaces)));
    }
    if (name == "replace") {
      Value count = a.get(2, "count");
      return Value(replace_all(v.str(), a.get(0, "old").str(), a.get(1, "new").str(),
                               count.is_undefined() ? -1 : count.as_int()));
    }
    if (name == "join") {
      std::string sep = a.get(0, "d", Value(std::string())).str();
      Value attribute = a.get(1, "attribute");
      std::string out;
      Array items = iterate(v);
      for (size_t i = 0; i < items.size(); ++i) {
        out +=
            (i ? sep : "") + (attribute.is_undefined() ? items[i] : items[i].get(attribute)).str();
        check_string_size(out.size());
      }
      return Value(out);
    }
    if (name == "first" || name == "last") {
      Array items = iterate(v);
      if (items.empty()) return Value();
      return name == "first" ? items.front() : items.back();
    }
    if (name == "list") return Value(iterate(v));
    if (name == "items") return items_of(v);
    if (name == "reverse") {
      if (v.is_string()) return Value(std::string(v.as_string().rbegin(), v.as_string().rend()));
      Array items = iterate(v);
      std::reverse(items.begin(), items.end());
      return Value(items);
    }
    if (name == "unique") {
      Array out;
      for (const Value& item : iterate(v))
        if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return o.equals(item); }))
          out.push_back(item);
      return Value(out);
    }
    if (name == "sort") {
      Array items = iterate(v);
      bool reverse = a.get(0, "reverse", Value(false)).truthy();
      Value attribute = a.get(2, "attribute");
      std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        const Value& kx = attribute.is_undefined() ? x : x.get(attribute);
        const Value& ky = attribute.is_undefined() ? y : y.get(attribute);
        return reverse ? ky.compare(kx) < 0 : kx.compare(ky) < 0;
      });
      return Value(items);
    }
    if (name == "map") {
      Value attribute = a.get(99, "attribute");
      Array out;
      for (const Value& item : iterate(v)) {
        if (!attribute.is_undefined()) {
          out.push_back(item.get(attribute));
        } else {
          CallArgs rest;
          rest.positional.assign(a.positional.begin() + (a.positional.empty() ? 0 : 1),
                                 a.positional.end());
          out.push_back(filter(a.positional.at(0).str(), item, rest));
        }
      }
      return Value(out);
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      bool by_attr = name == "selectattr" || name == "rejectattr";
      bool keep_when = name == "select" || name == "selectattr";
      size_t first_arg = by_attr ? 1 : 0;
      std::string test_name = a.positional.size() > first_arg ? a.positional[first_arg].str() : "";
      CallArgs rest;
      if (a.positional.size() > first_arg + 1)
        rest.positional.assign(a.positional.begin() + first_arg + 1, a.positional.end());
      Array out;
      for (const Value& item : iterate(v)) {
        Value subject = by_attr ? item.get(a.positional.at(0)) : item;
        bool ok = test_name.empty() ? subject.truthy() : test(test_name, subject, rest);
        if (ok == keep_when) out.push_back(item);
      }
      return Value(out);
    }
    if (name == "indent") {
      int64_t width = a.get(0, "width", Value(int64_t{4})).as_int();
      if (width < 0 || width > 1024) throw Error("indent width must be between 0 and 1024");
      bool first = a.get(1, "first", Value(false)).truthy();
      bool blank = a.get(2, "blank", Value(false)).truthy();
      std::string pad(static_cast<size_t>(width), ' ');
      Array lines = split(v.str(), Value(std::string("\n")), -1);
      std::string out;
      for (size_t i = 0; i < lines.size(); ++i) {
        const std::string& line = lines[i].as_string();
        bool indent_line = (i > 0 || first) && (blank || !line.empty());
        out += (i ? "\n" : "") + (indent_line ? pad : "") + line;
        check_string_size(out.size());
      }
      return Value(out);
    }
    if (name == "dictsort") {
      Array pairs = items_of(v).array();
      std::stable_sort(pairs.begin(), pairs.end(), [](const Value& x, const Value& y) {
        return x.array()[0].compare(y.array()[0]) < 0;
      });
      return Value(pairs);
    }
    throw Error("unknown filter '" + name + "'");
  }

  static std::string escape_html(const std::string& s) {
    std::string out;
    for (char c : s) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&#34;";
          break;
        case '\'':
          out += "&#39;";
          break;
        default:
          out += c;
      }
    }
    return out;
  }

  // ---- tests ----

  bool test(const std::string& name, const Value& v, CallArgs& a) {
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "string") return v.is_string();
    if (name == "number") return v.is_int() || v.kind() == Value::Kind::kFloat;
    if (name == "integer") return v.is_int();
    if (name == "float") return v.kind() == Value::Kind::kFloat;
    if (name == "boolean") return v.is_bool();
    if (name == "true") return v.is_bool() && v.as_bool();
    if (name == "false") return v.is_bool() && !v.as_bool();
    if (name == "mapping") return v.is_object();
    if (name == "iterable") return v.is_array() || v.is_object() || v.is_string();
    if (name == "sequence") return v.is_array() || v.is_object() || v.is_string();
    if (name == "callable") return v.is_function();
    if (name == "even") return v.as_int() % 2 == 0;
    if (name == "odd") return v.as_int() % 2 != 0;
    if (name == "divisibleby")
      return a.get(0, "num").as_int() != 0 && v.as_int() % a.get(0, "num").as_int() == 0;
    if (name == "equalto" || name == "eq" || name == "sameas") return v.equals(a.get(0, "other"));
    if (name == "ne") return !v.equals(a.get(0, "other"));
    if (name == "lt" || name == "lessthan") return v.compare(a.get(0, "other")) < 0;
    if (name == "gt" || name == "greaterthan") return v.compare(a.get(0, "other")) > 0;
    if (name == "le") return v.compare(a.get(0, "other")) <= 0;
    if (name == "ge") return v.compare(a.get(0, "other")) >= 0;
    if (name == "in") return contains(a.get(0, "seq"), v);
    if (name == "lower") return v.is_string() && to_lower(v.as_string()) == v.as_string();
    if (name == "upper") return v.is_string() && to_upper(v.as_string()) == v.as_string();
    throw Error("unknown test '" + name + "'");
  }
};

}  // namespace

Template::Template(const std::string& source) : parsed_(std::make_unique<Parsed>()) {
  parsed_->body = parse_template(source);
}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Value& context, const RenderLimits& limits) const {
  Renderer renderer(context, limits);
  std::string out;
  renderer.render(parsed_->body, out);
  return out;
}

}  // namespace ember::chat::jinja
