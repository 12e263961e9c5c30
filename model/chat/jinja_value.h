// Values of the Jinja template language as chat templates use them: Python-like scalars,
// strings, lists, tuples and dicts (shared, so a namespace() can be changed from inside a loop),
// callables and objects implemented in C++ (loop, cycler, joiner). Rendering follows Python's
// str()/repr() and json.dumps() so output matches jinja2 byte for byte.
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
class Native;
using Function = std::function<Value(CallArgs&)>;

// json.dumps() options, as transformers' tojson filter passes them.
struct JsonFormat {
  bool pretty = false;                // indent given: one item per line
  std::string indent;                 // prefix per level when pretty
  std::string item_separator = ", ";  // json.dumps: "," when indented
  std::string key_separator = ": ";
  bool ensure_ascii = false;  // non-ASCII as \uXXXX escapes
  bool sort_keys = false;
};

class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kArray,
    kObject,
    kFunction,
    kNative
  };

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
  // jinja2's Markup (from `safe` or `escape`): adding a plain string to it escapes the plain one.
  static Value safe_string(std::string s);
  static Value tuple(Array items);
  // groupby()'s (grouper, list) pairs: tuples whose items are also attributes of those names.
  static Value group(Value grouper, Array list);
  static Value native(std::shared_ptr<Native> n);
  // What jinja2's map, select, unique, ... return: a generator. It is always true, has no
  // length, and iterating it (jinja::iterate) empties it, as it does in Python.
  static Value iterator(Array items);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // int, float or bool: Python's bool is an int.
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_safe() const { return kind_ == Kind::kString && (flags_ & kSafe); }
  bool is_array() const { return kind_ == Kind::kArray; }  // lists, tuples and iterators
  bool is_tuple() const { return kind_ == Kind::kArray && (flags_ & (kTuple | kGroup)); }
  bool is_group() const { return kind_ == Kind::kArray && (flags_ & kGroup); }
  bool is_iterator() const { return kind_ == Kind::kArray && (flags_ & kIterator); }
  // A list or tuple, not an iterator.
  bool is_sequence() const { return kind_ == Kind::kArray && !(flags_ & kIterator); }
  bool is_object() const { return kind_ == Kind::kObject; }  // dicts and namespaces
  bool is_function() const { return kind_ == Kind::kFunction; }
  bool is_native() const { return kind_ == Kind::kNative; }
  bool is_namespace() const;
  bool is_dict() const { return is_object() && !is_namespace(); }

  bool truthy() const;
  bool as_bool() const { return b_; }
  int64_t as_int() const;    // bools and floats convert
  double as_double() const;  // ints and bools convert
  const std::string& as_string() const { return s_; }
  Array& array() const { return *a_; }
  Object& obj() const { return *o_; }
  const Function& fn() const { return *f_; }
  Native& native_object() const { return *n_; }

  // Plain subscripting: dict keys, list and tuple indices and string characters (code points;
  // negative from the end); undefined when absent. Attribute and method lookup as templates see
  // it is jinja::get_attribute / get_item (jinja_builtins.h).
  Value get(const Value& key) const;
  Value attr(const std::string& name) const { return get(Value(name)); }
  // len(): characters of strings, items of lists and dicts; 0 for undefined (as jinja2's
  // Undefined); throws for other kinds.
  size_t length() const;

  // These throw jinja::Error rather than build a string over kMaxStringBytes or recurse into
  // values nested deeper than kMaxNesting.
  std::string str() const;   // Python str(): what {{ x }} prints
  std::string repr() const;  // Python repr(): how values print inside lists and dicts
  std::string to_json(const JsonFormat& format = {}) const;  // json.dumps(); throws for
                                                             // values JSON cannot hold

  // Python ==. Markup equals the same plain text; a tuple never equals a list.
  bool equals(const Value& other) const;
  int compare(const Value& other) const;  // <0, 0, >0; throws for incomparable kinds (as Python)
  std::string type_name() const;          // Python's type name, for error messages

 private:
  enum Flag : uint8_t { kSafe = 1, kTuple = 2, kGroup = 4, kIterator = 8 };

  void append_repr(std::string& out, int depth) const;
  void append_json(std::string& out, const JsonFormat& format, int depth) const;
  bool equals(const Value& other, int depth) const;
  int compare(const Value& other, int depth) const;

  Kind kind_ = Kind::kUndefined;
  uint8_t flags_ = 0;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::shared_ptr<Array> a_;
  std::shared_ptr<Object> o_;
  std::shared_ptr<Function> f_;
  std::shared_ptr<Native> n_;
};

// A dict keeping insertion order (as Python's does).
struct Object {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

// An object implemented in C++ (the loop variable, cycler(), joiner()): attributes and calls
// are its own.
class Native {
 public:
  virtual ~Native() = default;
  // The attribute `name`, undefined when it has none.
  virtual Value attribute(const std::string& name) = 0;
  // obj(args); the default refuses, as Python does for objects that are not callable.
  virtual Value call(CallArgs& args);
  virtual bool callable() const { return false; }
  virtual std::string type_name() const = 0;
  virtual std::string repr() const = 0;
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

// Counts code points in UTF-8 (an invalid byte counts as one).
size_t utf8_length(const std::string& s);

// Python's repr() of a float (the shortest text that reads back: 100.0, 1e-05, 1e+16).
std::string format_float(double d);

}  // namespace ember::chat::jinja
