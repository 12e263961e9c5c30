// Evaluation of a parsed template: statements, expressions, macros and loops, scoped as jinja2
// scopes them, and the globals chat templates use. Filters, tests and methods are in
// jinja_filters.cpp and jinja_methods.cpp.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <functional>
#include <unordered_map>

#include "model/chat/jinja.h"
#include "model/chat/jinja_ast.h"
#include "model/chat/jinja_builtins.h"

namespace ember::chat::jinja {

struct Template::Parsed {
  Body body;
};

namespace {

enum class Flow { kNormal, kBreak, kContinue };

// Limits that keep a hostile or broken template from hanging or exhausting the server.
// The work budget (RenderLimits) bounds time; these bound memory and recursion.
constexpr int kMaxCallDepth = 64;             // nested macro calls and recursive loops
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

// Python's float // and %: the quotient floored and the remainder with the divisor's sign,
// computed from fmod as CPython does (floor(a / b) differs, e.g. for 1 // 0.1).
void float_divmod(double a, double b, double& quotient, double& remainder) {
  remainder = std::fmod(a, b);
  double q = (a - remainder) / b;
  if (remainder != 0) {
    if ((b < 0) != (remainder < 0)) {
      remainder += b;
      q -= 1.0;
    }
  } else {
    remainder = std::copysign(0.0, b);
  }
  if (q != 0) {
    quotient = std::floor(q);
    if (q - quotient > 0.5) quotient += 1.0;
  } else {
    quotient = std::copysign(0.0, a / b);
  }
}

// The variables of one scope, and the scope it sits in. A template's top level, each loop
// iteration, macro call, set block and with block has its own, as in jinja2; macros see the
// scope they were defined in (not the caller's).
struct Frame {
  std::unordered_map<std::string, Value> vars;
  Frame* parent = nullptr;
  // Set when a macro or caller keeps this frame as its scope; cleared when the frame ends, so
  // a macro that outlives it (stored in a namespace) falls back to the top level.
  std::shared_ptr<Frame*> handle;

  explicit Frame(Frame* p) : parent(p) {}
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;
  ~Frame() {
    if (handle) *handle = nullptr;
  }
  std::shared_ptr<Frame*> share() {
    if (!handle) handle = std::make_shared<Frame*>(this);
    return handle;
  }
};

// Functions and objects other than macros: they may hold values (a bound method its object, a
// loop its items), so a namespace or loop holding them could end up holding itself.
bool holds_values(const Value& v) {
  return v.is_function() || (v.is_native() && v.type_name() != "Macro");
}

// Whether v or anything in it holds values that way (looked into to a bounded depth); counts
// the items looked at.
bool contains_holders(const Value& v, int64_t& nodes, int depth = 0) {
  ++nodes;
  if (holds_values(v) || depth > kMaxNesting) return true;
  if (v.is_array())
    for (const Value& item : v.array())
      if (contains_holders(item, nodes, depth + 1)) return true;
  if (v.is_object())
    for (const auto& item : v.obj().items)
      if (contains_holders(item.second, nodes, depth + 1)) return true;
  return false;
}

// jinja2's LoopContext: the `loop` variable of a for loop, one object advanced per iteration.
class LoopObject : public Native, public std::enable_shared_from_this<LoopObject> {
 public:
  using Recurse = std::function<Value(const Value&, int64_t depth)>;
  LoopObject(Host& host, Array items, int64_t depth, Recurse recurse)
      : items(std::move(items)), depth(depth), host_(host), recurse_(std::move(recurse)) {}

  Array items;
  int64_t index0 = 0;
  const int64_t depth;

  Value attribute(const std::string& name) override {
    const int64_t n = static_cast<int64_t>(items.size());
    if (name == "index") return Value(index0 + 1);
    if (name == "index0") return Value(index0);
    if (name == "first") return Value(index0 == 0);
    if (name == "last") return Value(index0 == n - 1);
    if (name == "length") return Value(n);
    if (name == "revindex") return Value(n - index0);
    if (name == "revindex0") return Value(n - index0 - 1);
    if (name == "previtem") return index0 > 0 ? items[index0 - 1] : Value();
    if (name == "nextitem") return index0 + 1 < n ? items[index0 + 1] : Value();
    if (name == "depth") return Value(depth);
    if (name == "depth0") return Value(depth - 1);
    if (name == "cycle") {
      auto self = shared_from_this();
      return Value::function([self](CallArgs& a) {
        if (a.positional.empty()) throw Error("no items for cycling given");
        return a.positional[static_cast<size_t>(self->index0) % a.positional.size()];
      });
    }
    if (name == "changed") {
      auto self = shared_from_this();
      return Value::function([self](CallArgs& a) {
        // The loop keeps the value, so it must not be able to hold the loop in turn.
        int64_t nodes = 0;
        for (const Value& v : a.positional)
          if (contains_holders(v, nodes)) throw Error("loop.changed() takes plain values only");
        self->host_.charge(nodes / 8 + 1);
        Value now = Value::tuple(a.positional);
        if (self->has_changed_ && self->last_changed_.equals(now)) return Value(false);
        self->last_changed_ = std::move(now);
        self->has_changed_ = true;
        return Value(true);
      });
    }
    return Value();
  }
  Value call(CallArgs& a) override {
    if (!recurse_)
      throw Error("Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.");
    return recurse_(a.get(0, "iterable"), depth + 1);
  }
  bool callable() const override { return true; }
  std::string type_name() const override { return "LoopContext"; }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(index0 + 1) + "/" + std::to_string(items.size()) + ">";
  }

 private:
  Host& host_;
  Recurse recurse_;
  Value last_changed_;
  bool has_changed_ = false;
};

// jinja2's cycler(*items): next() returns the items in turn, current the one next() returns.
class Cycler : public Native, public std::enable_shared_from_this<Cycler> {
 public:
  explicit Cycler(Array items) : items_(std::move(items)) {}
  Value attribute(const std::string& name) override {
    if (name == "current") return items_[pos_];
    if (name == "items") return Value::tuple(items_);
    auto self = shared_from_this();
    if (name == "next")
      return Value::function([self](CallArgs&) {
        Value v = self->items_[self->pos_];
        self->pos_ = (self->pos_ + 1) % self->items_.size();
        return v;
      });
    if (name == "reset")
      return Value::function([self](CallArgs&) {
        self->pos_ = 0;
        return Value::none();
      });
    return Value();
  }
  std::string type_name() const override { return "Cycler"; }
  std::string repr() const override { return "<jinja2.utils.Cycler object>"; }

 private:
  Array items_;
  size_t pos_ = 0;
};

// jinja2's joiner(sep): "" the first time it is called, then sep.
class Joiner : public Native {
 public:
  explicit Joiner(Value sep) : sep_(std::move(sep)) {}
  Value attribute(const std::string& name) override { return name == "sep" ? sep_ : Value(); }
  Value call(CallArgs&) override {
    if (!used_) {
      used_ = true;
      return Value("");
    }
    return sep_;
  }
  bool callable() const override { return true; }
  std::string type_name() const override { return "Joiner"; }
  std::string repr() const override { return "<jinja2.utils.Joiner object>"; }

 private:
  Value sep_;
  bool used_ = false;
};

// A macro (or the caller of a call block) as a value: jinja2's Macro.
class MacroObject : public Native {
 public:
  using Invoke = std::function<Value(CallArgs&)>;
  MacroObject(const Stmt& definition, Invoke invoke)
      : definition_(definition), invoke_(std::move(invoke)) {}
  Value attribute(const std::string& name) override {
    if (name == "name")
      return definition_.kind == Stmt::Kind::kMacro ? Value(definition_.name) : Value::none();
    if (name == "arguments") {
      Array names;
      for (const auto& [param, _] : definition_.params) names.emplace_back(param);
      return Value::tuple(std::move(names));
    }
    if (name == "catch_kwargs") return Value(definition_.catch_kwargs);
    if (name == "catch_varargs") return Value(definition_.catch_varargs);
    if (name == "caller") return Value(definition_.uses_caller);
    return Value();
  }
  Value call(CallArgs& a) override { return invoke_(a); }
  bool callable() const override { return true; }
  std::string type_name() const override { return "Macro"; }
  std::string repr() const override {
    return definition_.kind == Stmt::Kind::kMacro ? "<Macro '" + definition_.name + "'>"
                                                  : "<Macro anonymous>";
  }

 private:
  const Stmt& definition_;
  Invoke invoke_;
};

// transformers' namespace() refuses attribute names starting with '_'.
void check_namespace_name(const std::string& name) {
  if (!name.empty() && name[0] == '_')
    throw Error(
        "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '" +
        name + "'");
}

// dict(*args, **kwargs) as Python builds it: a mapping or (key, value) pairs, then keywords.
Value build_dict(const CallArgs& a) {
  Value d = Value::object();
  if (a.positional.size() > 1) throw Error("dict expected at most 1 argument");
  if (!a.positional.empty()) {
    const Value& source = a.positional[0];
    if (source.is_dict()) {
      d.obj().items = source.obj().items;
    } else {
      for (const Value& pair : iterate(source)) {
        const Array kv = iterate(pair);
        if (kv.size() != 2) throw Error("dictionary update sequence element has the wrong length");
        if (!kv[0].is_string()) throw Error("dict keys other than strings are not supported");
        d.obj().set(kv[0].as_string(), kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.keyword) d.obj().set(k, v);
  return d;
}

class Renderer : public Host {
 public:
  Renderer(const Value& context, const RenderLimits& limits) : root_(nullptr), limits_(limits) {
    frame_ = &root_;
    install_globals();
    if (context.is_object())
      for (const auto& [k, v] : context.obj().items) root_.vars[k] = v;
  }

  void render(const Body& body, std::string& out) {
    if (exec(body, out) != Flow::kNormal) throw Error("break or continue outside a loop");
  }

  void charge(int64_t units) override {
    work_ += units;
    if (work_ > limits_.max_work) throw Error("template takes too much work to render");
  }

 private:
  Frame root_;
  Frame* frame_;
  RenderLimits limits_;
  int64_t work_ = 0;
  int call_depth_ = 0;
  Value block_value_;  // the rendered body a filter block's filters apply to

  // Runs `fn` with `frame` as the current scope.
  template <typename F>
  auto in_frame(Frame& frame, F&& fn) {
    Frame* saved = frame_;
    frame_ = &frame;
    struct Restore {
      Frame*& slot;
      Frame* saved;
      ~Restore() { slot = saved; }
    } restore{frame_, saved};
    return fn();
  }

  // Counts one level of macro or recursive-loop nesting for as long as it lives.
  struct CallDepth {
    explicit CallDepth(Renderer& r) : r_(r) {
      if (r_.call_depth_ >= kMaxCallDepth) throw Error("macro calls nested too deeply");
      ++r_.call_depth_;
    }
    ~CallDepth() { --r_.call_depth_; }
    Renderer& r_;
  };

  // A value about to be stored in a variable or namespace: its nesting and size stay bounded
  // (so printing, comparing and freeing it cannot recurse without end), and a namespace never
  // ends up inside itself (a cycle would never be freed). Namespaces are the only values a
  // template can change, so only they could close a cycle: they may not hold functions (a
  // bound method holds its object) or loop, cycler and joiner objects (which hold values).
  void check_storable(const Value& v, const Object* target) {
    int64_t nodes = 0;
    std::function<void(const Value&, int)> visit = [&](const Value& x, int depth) {
      if (depth > kMaxNesting) throw Error("a value in the template is nested too deeply");
      if (target && holds_values(x))
        throw Error("a namespace cannot hold a " + x.type_name() + " in this interpreter");
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
    for (const Frame* f = frame_; f; f = f->parent) {
      auto found = f->vars.find(name);
      if (found != f->vars.end()) return found->second;
    }
    return Value();
  }
  void assign(const std::string& name, Value v) { frame_->vars[name] = std::move(v); }

  void install_globals() {
    auto& g = root_.vars;
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
      for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        if (static_cast<int64_t>(out.size()) >= kMaxRange) throw Error("range() too large");
        out.emplace_back(i);
        if (__builtin_add_overflow(i, step, &i)) break;  // past the int64 range: done
      }
      return Value(out);
    });
    g["namespace"] = Value::function([](CallArgs& a) {
      Value attrs = build_dict(a);
      Value ns = Value::make_namespace();
      for (const auto& [k, v] : attrs.obj().items) {
        check_namespace_name(k);
        ns.obj().set(k, v);
      }
      return ns;
    });
    g["dict"] = Value::function([](CallArgs& a) { return build_dict(a); });
    g["cycler"] = Value::function([](CallArgs& a) {
      if (a.positional.empty()) throw Error("at least one item has to be provided");
      return Value::native(std::make_shared<Cycler>(a.positional));
    });
    g["joiner"] = Value::function([](CallArgs& a) {
      return Value::native(std::make_shared<Joiner>(a.get(0, "sep", Value(", "))));
    });
    g["raise_exception"] = Value::function([](CallArgs& a) -> Value {
      throw Error(a.positional.empty() ? "raise_exception() called" : a.positional[0].str());
    });
    g["strftime_now"] = Value::function([](CallArgs& a) {
      std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      std::string format = a.get(0, "format").str();
      if (format.empty()) return Value("");
      // strftime returns 0 when the buffer is too small: grow it (to a bound).
      for (size_t size = 128; size <= 65536; size *= 4) {
        std::string buf(size, '\0');
        const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &local);
        if (n > 0) return Value(buf.substr(0, n));
      }
      return Value("");
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

  void output(const Expr& e, std::string& out) {
    const Value v = eval(e);
    if (v.is_string())
      out += v.as_string();
    else
      out += v.str();
  }

  // Renders `body` in a scope of its own and returns the text.
  std::string capture(const Body& body) {
    std::string captured;
    Frame frame(frame_);
    in_frame(frame, [&] { return exec(body, captured); });
    return captured;
  }

  // The filters of a filter block or `set x | f` block, applied to the block's text.
  Value filter_block(const Expr& chain, std::string text) {
    Value saved = std::move(block_value_);
    block_value_ = Value(std::move(text));
    Value v = eval(chain);
    block_value_ = std::move(saved);
    return v;
  }

  Flow exec(const Stmt& s, std::string& out) {
    charge(1);
    check_string_size(out.size());
    switch (s.kind) {
      case Stmt::Kind::kText:
        out += s.text;
        return Flow::kNormal;
      case Stmt::Kind::kOutput:
        if (s.expr) output(*s.expr, out);
        for (const ExprPtr& e : s.values) output(*e, out);
        return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (const auto& [cond, body] : s.branches)
          if (eval(*cond).truthy()) return exec(body, out);
        return exec(s.else_body, out);
      case Stmt::Kind::kFor: {
        Value iterable = eval(*s.expr);
        return exec_for(s, iterable, 1, out);
      }
      case Stmt::Kind::kSet:
        exec_set(s);
        return Flow::kNormal;
      case Stmt::Kind::kSetBlock: {
        std::string captured = capture(s.body);
        Value v = s.expr ? filter_block(*s.expr, std::move(captured)) : Value(std::move(captured));
        check_storable(v, nullptr);
        assign(s.name, std::move(v));
        return Flow::kNormal;
      }
      case Stmt::Kind::kFilterBlock: {
        const Value v = filter_block(*s.expr, capture(s.body));
        out += v.str();
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        assign(s.name, make_macro(s, frame_->share()));
        return Flow::kNormal;
      case Stmt::Kind::kCallBlock:
        out += exec_call_block(s).str();
        return Flow::kNormal;
      case Stmt::Kind::kWith: {
        Frame frame(frame_);
        for (size_t i = 0; i < s.targets.size(); ++i) {
          Value v = eval(*s.values[i]);
          check_storable(v, nullptr);
          frame.vars[s.targets[i]] = std::move(v);
        }
        return in_frame(frame, [&] { return exec(s.body, out); });
      }
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
      case Stmt::Kind::kBlock: {
        Frame frame(frame_);
        return in_frame(frame, [&] { return exec(s.body, out); });
      }
    }
    return Flow::kNormal;
  }

  void exec_set(const Stmt& s) {
    Value v = eval(*s.expr);
    if (s.attribute_target) {
      Value target = lookup(s.targets[0]);
      if (!target.is_namespace()) throw Error("cannot assign attribute on non-namespace object");
      check_namespace_name(s.targets[1]);
      check_storable(v, &target.obj());
      target.obj().set(s.targets[1], std::move(v));
    } else if (s.targets.size() == 1) {
      check_storable(v, nullptr);
      assign(s.targets[0], std::move(v));
    } else {
      unpack(s.targets, v);
    }
  }

  // `a, b = value`: Python's unpacking of any iterable.
  void unpack(const std::vector<std::string>& targets, const Value& v) {
    Array parts = iterate(v);
    if (parts.size() != targets.size())
      throw Error(parts.size() > targets.size()
                      ? "too many values to unpack (expected " + std::to_string(targets.size()) +
                            ")"
                      : "not enough values to unpack (expected " + std::to_string(targets.size()) +
                            ", got " + std::to_string(parts.size()) + ")");
    for (size_t i = 0; i < parts.size(); ++i) {
      check_storable(parts[i], nullptr);
      assign(targets[i], std::move(parts[i]));
    }
  }

  Flow exec_for(const Stmt& s, const Value& iterable, int64_t depth, std::string& out) {
    Array items = iterate(iterable);
    charge(static_cast<int64_t>(items.size()) / 8);
    if (s.condition) {  // `for x in xs if cond`: filter first, so loop.* counts what remains
      Array kept;
      for (const Value& item : items) {
        Frame frame(frame_);
        const bool keep = in_frame(frame, [&] {
          bind_targets(s, item);
          return eval(*s.condition).truthy();
        });
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, out);
    LoopObject::Recurse recurse;
    if (s.recursive) {
      recurse = [this, &s](const Value& sub, int64_t sub_depth) {
        CallDepth guard(*this);
        std::string text;
        exec_for(s, sub, sub_depth, text);
        return Value(std::move(text));
      };
    }
    auto loop = std::make_shared<LoopObject>(*this, std::move(items), depth, std::move(recurse));
    const Value loop_value = Value::native(loop);
    const int64_t n = static_cast<int64_t>(loop->items.size());
    for (int64_t i = 0; i < n; ++i) {
      charge(1);
      loop->index0 = i;
      Frame frame(frame_);
      const Flow f = in_frame(frame, [&] {
        bind_targets(s, loop->items[i]);
        frame.vars["loop"] = loop_value;
        return exec(s.body, out);
      });
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  void bind_targets(const Stmt& s, const Value& item) {
    if (s.targets.size() == 1) {
      assign(s.targets[0], item);
      return;
    }
    unpack(s.targets, item);
  }

  // ---- macros ----

  // A macro as a function value. Arguments bind as jinja2's Macro binds them: positionals,
  // then keywords, then defaults (evaluated in the call's scope, so a default may use an
  // earlier parameter); extra ones go to varargs / kwargs when the body reads those, else fail.
  Value make_macro(const Stmt& s, std::shared_ptr<Frame*> scope) {
    const Stmt* macro = &s;
    return Value::native(std::make_shared<MacroObject>(s, [this, macro, scope](CallArgs& a) {
      return call_macro(*macro, scope, a,
                        macro->kind == Stmt::Kind::kMacro ? macro->name : "caller");
    }));
  }

  Value call_macro(const Stmt& m, const std::shared_ptr<Frame*>& scope, CallArgs& a,
                   const std::string& name) {
    CallDepth guard(*this);
    Frame frame(*scope ? *scope : &root_);
    std::vector<std::pair<std::string, Value>> keyword = a.keyword;
    auto take_keyword = [&](const std::string& key, Value& into) {
      for (auto it = keyword.begin(); it != keyword.end(); ++it)
        if (it->first == key) {
          into = std::move(it->second);
          keyword.erase(it);
          return true;
        }
      return false;
    };
    const size_t count = m.params.size();
    if (a.positional.size() > count && !m.catch_varargs)
      throw Error("macro '" + name + "' takes not more than " + std::to_string(count) +
                  " argument(s)");
    std::string text;
    in_frame(frame, [&] {
      for (size_t i = 0; i < count; ++i) {
        const auto& [param, fallback] = m.params[i];
        Value v;
        if (i < a.positional.size())
          v = a.positional[i];
        else if (!take_keyword(param, v) && fallback)
          v = eval(*fallback);
        frame.vars[param] = std::move(v);
      }
      if (m.uses_caller) {
        Value caller;
        take_keyword("caller", caller);
        frame.vars["caller"] = caller;
      }
      if (m.catch_kwargs) {
        Value kwargs = Value::object();
        for (auto& [k, v] : keyword) kwargs.obj().set(k, v);
        frame.vars["kwargs"] = kwargs;
      } else if (!keyword.empty()) {
        throw Error("macro '" + name + "' takes no keyword argument '" + keyword[0].first + "'");
      }
      if (m.catch_varargs) {
        Array extra;
        for (size_t i = count; i < a.positional.size(); ++i) extra.push_back(a.positional[i]);
        frame.vars["varargs"] = Value::tuple(std::move(extra));
      }
      return exec(m.body, text);
    });
    return Value(std::move(text));
  }

  // {% call(params) f(args) %}body{% endcall %}: f(args, caller=<the body as a macro>).
  Value exec_call_block(const Stmt& s) {
    const Expr& call = *s.expr;
    Value callee = eval(*call.target);
    CallArgs a = eval_args(call);
    a.keyword.emplace_back("caller", make_macro(s, frame_->share()));
    return call_value(callee, a, call.line);
  }

  Value call_value(const Value& callee, CallArgs& a, size_t line) {
    if (callee.is_function()) return callee.fn()(a);
    if (callee.is_native()) return callee.native_object().call(a);
    throw Error("'" + callee.type_name() + "' object is not callable (line " +
                std::to_string(line) + ")");
  }

  // ---- expressions ----

  CallArgs eval_args(const Expr& e) {
    CallArgs a;
    a.positional.reserve(e.args.size());
    for (const ExprPtr& arg : e.args) a.positional.push_back(eval(*arg));
    for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v));
    return a;
  }

  // Operations that scan their input (string methods, filters, `in`, indexing a string by
  // characters) are charged by its size too, so that repeating them on a huge value runs out of
  // budget instead of time.
  void charge_input(const Value& v) {
    if (v.is_string())
      charge(static_cast<int64_t>(v.as_string().size() / 256));
    else if (v.is_array())
      charge(static_cast<int64_t>(v.array().size() / 16));
    else if (v.is_object())
      charge(static_cast<int64_t>(v.obj().items.size() / 16));
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
      case Expr::Kind::kAttr:
        return get_attribute(eval(*e.target), e.name);
      case Expr::Kind::kItem: {
        Value target = eval(*e.target);
        if (target.is_string()) charge_input(target);
        return get_item(target, eval(*e.args[0]));
      }
      case Expr::Kind::kSlice: {
        Value target = eval(*e.target);
        charge_input(target);
        auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value(); };
        const Value start = part(0), stop = part(1), step = part(2);
        if (target.is_string())
          return target.is_safe()
                     ? Value::safe_string(py::slice(target.as_string(), start, stop, step))
                     : Value(py::slice(target.as_string(), start, stop, step));
        if (target.is_sequence()) return slice_sequence(target, start, stop, step);
        if (target.is_undefined()) throw Error("cannot slice an undefined value");
        return Value();  // jinja2's getitem turns the TypeError into undefined
      }
      case Expr::Kind::kCall: {
        if (e.target->kind == Expr::Kind::kAttr) {  // obj.method(...) without a bound method
          Value obj = eval(*e.target->target);
          charge_input(obj);
          CallArgs a = eval_args(e);
          Value out;
          if (!obj.is_undefined() && call_method(obj, e.target->name, a, out)) return out;
          return call_value(get_attribute(obj, e.target->name), a, e.line);
        }
        Value callee = eval(*e.target);
        CallArgs a = eval_args(e);
        if (callee.is_undefined())
          throw Error("'undefined' object is not callable (line " + std::to_string(e.line) + ")");
        return call_value(callee, a, e.line);
      }
      case Expr::Kind::kFilter: {
        Value target = eval(*e.target);
        charge_input(target);
        CallArgs a = eval_args(e);
        return apply_filter(*this, e.name, target, a);
      }
      case Expr::Kind::kTest: {
        Value target = eval(*e.target);
        CallArgs a = eval_args(e);
        if (!a.positional.empty()) charge_input(a.positional[0]);  // `in` scans it
        bool r = apply_test(*this, e.name, target, a);
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::kUnary: {
        Value v = eval(*e.target);
        if (e.name == "not") return Value(!v.truthy());
        if (!v.is_number())
          throw Error("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "-") return v.is_float() ? Value(-v.as_double()) : Value(negate(v.as_int()));
        return v.is_bool() ? Value(v.as_int()) : v;
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
        items.reserve(e.args.size());
        for (const ExprPtr& a : e.args) items.push_back(eval(*a));
        return e.kind == Expr::Kind::kTuple ? Value::tuple(std::move(items))
                                            : Value(std::move(items));
      }
      case Expr::Kind::kDict: {
        Value d = Value::object();
        for (size_t i = 0; i < e.keys.size(); ++i) {
          const Value key = eval(*e.keys[i]);
          if (key.is_array() && !key.is_tuple()) throw Error("unhashable type: 'list'");
          if (key.is_object()) throw Error("unhashable type: 'dict'");
          d.obj().set(key.str(), eval(*e.args[i]));
        }
        return d;
      }
      case Expr::Kind::kBlockValue:
        return block_value_;
    }
    return Value();
  }

  static Value slice_sequence(const Value& v, const Value& start, const Value& stop,
                              const Value& step) {
    const auto [b, e, st, count] =
        py::slice_range(static_cast<int64_t>(v.array().size()), start, stop, step);
    Array out;
    out.reserve(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) out.push_back(v.array()[b + k * st]);
    return v.is_tuple() ? Value::tuple(std::move(out)) : Value(std::move(out));
  }

  bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return a.equals(b);
    if (op == "!=") return !a.equals(b);
    if (op == "in" || op == "not in") {
      charge_input(b);
      const bool in = contains(b, a);
      return op == "in" ? in : !in;
    }
    if (a.is_undefined() || b.is_undefined()) throw Error("cannot compare an undefined value");
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
    if (op == "~") {  // jinja2 joins str() of both: plain text, even from Markup
      // One allocation of the final size: templates build long prompts as `out ~ piece`.
      const std::string left = l.is_string() ? std::string() : l.str();
      const std::string right = r.is_string() ? std::string() : r.str();
      const std::string& a = l.is_string() ? l.as_string() : left;
      const std::string& b = r.is_string() ? r.as_string() : right;
      check_string_size(a.size() + b.size());
      std::string joined;
      joined.reserve(a.size() + b.size());
      joined.append(a).append(b);
      return Value(std::move(joined));
    }
    if (l.is_number() && r.is_number()) return arithmetic(op, l, r);
    if (op == "+") return concatenate(l, r);
    if (op == "*") {
      if ((l.is_string() || l.is_sequence()) && (r.is_int() || r.is_bool()))
        return repeat(l, r.as_int());
      if ((r.is_string() || r.is_sequence()) && (l.is_int() || l.is_bool()))
        return repeat(r, l.as_int());
    }
    if (op == "%" && l.is_string()) return string_format(l, r);
    throw Error("unsupported operand types for " + op + ": '" + l.type_name() + "' and '" +
                r.type_name() + "'");
  }

  static Value arithmetic(const std::string& op, const Value& l, const Value& r) {
    const bool floats = l.is_float() || r.is_float();
    if (op == "/") {
      if (r.as_double() == 0) throw Error("division by zero");
      return Value(l.as_double() / r.as_double());
    }
    if (op == "**") {
      if (floats || r.as_int() < 0) {
        const double base = l.as_double(), exponent = r.as_double();
        if (base == 0 && exponent < 0) throw Error("0.0 cannot be raised to a negative power");
        if (base < 0 && exponent != std::floor(exponent))
          throw Error("a negative number to a fractional power is complex");
        const double p = std::pow(base, exponent);
        if (std::isinf(p) && std::isfinite(base) && std::isfinite(exponent))
          throw Error("numerical result out of range");
        return Value(p);
      }
      return Value(int_power(l.as_int(), r.as_int()));
    }
    if (floats) {
      const double a = l.as_double(), b = r.as_double();
      if (op == "+") return Value(a + b);
      if (op == "-") return Value(a - b);
      if (op == "*") return Value(a * b);
      if (b == 0) throw Error("float division by zero");
      double q, m;
      float_divmod(a, b, q, m);
      return Value(op == "//" ? q : m);
    }
    int64_t a = l.as_int(), b = r.as_int(), c;
    if (op == "+" || op == "-" || op == "*") {
      bool overflow = op == "+"   ? __builtin_add_overflow(a, b, &c)
                      : op == "-" ? __builtin_sub_overflow(a, b, &c)
                                  : __builtin_mul_overflow(a, b, &c);
      if (overflow) throw Error("integer overflow in " + op);
      return Value(c);
    }
    if (b == 0) throw Error("integer division or modulo by zero");
    if (b == -1) {  // the one quotient that can overflow
      if (a == INT64_MIN && op == "//") throw Error("integer overflow in " + op);
      return Value(op == "//" ? -a : int64_t{0});
    }
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;  // floor division
    if (op == "//") return Value(q);
    return Value(a - b * q);
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
