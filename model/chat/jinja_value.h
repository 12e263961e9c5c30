// Values of the Jinja template language as chat templates use them: Python-like scalars,
// strings, lists and dicts (shared, so a namespace() can be changed from inside a loop), and
// callables. Rendering follows Python's str()/repr() so output matches jinja2 byte for byte.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace ember::chat::jinja {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The largest string a template may build (its output included), in bytes.
constexpr size_t kMaxStringBytes = size_t(64) << 20;

class Value;
using Array = std::vector<Value>;
struct Object;
struct CallArgs;
using Function = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kFunction };

  Value() = default;  // undefined
  static Value none();
  Value(bool b);
  Value(int v) : Value(static_cast<int64_t>(v)) {}
  Value(int64_t v);
  Value(double v);
  Value(const char* s) : Value(std::string(s)) {}
  Value(std::string s);
  Value(Array items);
  static Value object();          // an empty dict
  static Value make_namespace();  // a dict whose attributes may be assigned
  static Value function(Function f);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_function() const { return kind_ == Kind::kFunction; }
  bool is_namespace() const;

  bool truthy() const;
  bool as_bool() const { return b_; }
  int64_t as_int() const;    // bools and floats convert
  double as_double() const;  // ints and bools convert
  const std::string& as_string() const { return s_; }
  Array& array() const { return *a_; }
  Object& obj() const { return *o_; }
  const Function& fn() const { return *f_; }

  // Member access as Jinja does it: dict keys, list indices (negative from the end); undefined
  // when absent.
  Value get(const Value& key) const;
  Value attr(const std::string& name) const { return get(Value(name)); }
  size_t length() const;  // strings count characters (code points)

  // These throw jinja::Error rather than build a string over kMaxStringBytes or recurse into
  // values nested deeper than kMaxNesting.
  std::string str() const;   // Python str(): what {{ x }} prints
  std::string repr() const;  // Python repr(): how values print inside lists and dicts
  std::string to_json(int indent = -1) const;  // json.dumps(ensure_ascii=False)

  bool equals(const Value& other) const;
  int compare(const Value& other) const;  // <0, 0, >0; throws for incomparable kinds
  std::string type_name() const;

 private:
  void append_repr(std::string& out, int depth) const;
  void append_json(std::string& out, int indent, int depth) const;
  bool equals(const Value& other, int depth) const;

  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::shared_ptr<Array> a_;
  std::shared_ptr<Object> o_;
  std::shared_ptr<Function> f_;
};

// A dict keeping insertion order (as Python's does).
struct Object {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

// Arguments of a call: positional, then keyword.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The argument at `index` or named `name`, else `fallback`.
  Value get(size_t index, const std::string& name, Value fallback = Value()) const;
};

// How deep lists and dicts may nest inside each other (a template building deeper values fails).
constexpr int kMaxNesting = 256;

// Counts code points in UTF-8.
size_t utf8_length(const std::string& s);

}  // namespace ember::chat::jinja
