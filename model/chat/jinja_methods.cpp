// Attribute and item lookup as jinja2's sandbox does it, the methods of str, dict, list and
// tuple, and the operators on sequences (see jinja_builtins.h).
#include <algorithm>

#include "model/chat/jinja_builtins.h"
#include "model/chat/jinja_unicode.h"

namespace ember::chat::jinja {
namespace {

[[noreturn]] void undefined_lookup(const std::string& what) {
  throw Error("cannot look up " + what + " on an undefined value");
}

// The attributes of Python's dict: methods, and methods that would change it (which the
// immutable sandbox refuses: the attribute reads as undefined, so calling it fails). Checked on
// every `d.name`, so by length first.
enum class DictAttribute { kNone, kMethod, kUnsafe };
DictAttribute dict_attribute(const std::string& name) {
  switch (name.size()) {
    case 3:
      return name == "get"   ? DictAttribute::kMethod
             : name == "pop" ? DictAttribute::kUnsafe
                             : DictAttribute::kNone;
    case 4:
      return name == "keys" || name == "copy" ? DictAttribute::kMethod : DictAttribute::kNone;
    case 5:
      return name == "items"   ? DictAttribute::kMethod
             : name == "clear" ? DictAttribute::kUnsafe
                               : DictAttribute::kNone;
    case 6:
      return name == "values"   ? DictAttribute::kMethod
             : name == "update" ? DictAttribute::kUnsafe
                                : DictAttribute::kNone;
    case 7:
      return name == "popitem" ? DictAttribute::kUnsafe : DictAttribute::kNone;
    case 10:
      return name == "setdefault" ? DictAttribute::kUnsafe : DictAttribute::kNone;
    default:
      return DictAttribute::kNone;
  }
}

// Methods that would change the value (see dict_attribute).
bool is_unsafe_method(const Value& obj, const std::string& name) {
  if (obj.is_dict()) return dict_attribute(name) == DictAttribute::kUnsafe;
  if (obj.is_sequence() && !obj.is_tuple()) {
    static const char* kNames[] = {"append", "clear",  "extend",  "insert",
                                   "pop",    "remove", "reverse", "sort"};
    return std::any_of(std::begin(kNames), std::end(kNames),
                       [&](const char* n) { return name == n; });
  }
  return false;
}

const std::string& string_arg(const CallArgs& a, size_t index, const std::string& name) {
  if (index >= a.positional.size()) throw Error(name + "() is missing an argument");
  const Value& v = a.positional[index];
  if (!v.is_string()) throw Error(name + "() argument must be str, not " + v.type_name());
  return v.as_string();
}

// A str method's result keeps Markup-ness when self is Markup (markupsafe wraps these).
Value like(const Value& self, std::string s) {
  return self.is_safe() ? Value::safe_string(std::move(s)) : Value(std::move(s));
}

// Applies Python's optional [start[, end]] arguments of find/count/startswith as a slice.
std::string sub_range(const std::string& s, const CallArgs& a, size_t first, int64_t& offset) {
  offset = 0;
  if (a.positional.size() <= first) return s;
  const Value start = a.positional[first];
  const Value end = a.positional.size() > first + 1 ? a.positional[first + 1] : Value();
  if (!start.is_none() && !start.is_undefined()) {
    offset = start.as_int();
    const int64_t n = static_cast<int64_t>(unicode::length(s));
    if (offset < 0) offset = std::max<int64_t>(0, offset + n);
    offset = std::min(offset, n);
  }
  return py::slice(s, start, end, Value());
}

bool string_method(const Value& self, const std::string& name, CallArgs& a, Value& out) {
  const std::string& s = self.as_string();
  auto optional_chars = [&](size_t index, std::string& chars) {
    const Value v = a.get(index, "chars", Value::none());
    if (v.is_none()) return true;  // whitespace
    if (!v.is_string()) throw Error(name + " arg must be None or str");
    chars = v.as_string();
    return false;
  };
  if (name == "startswith" || name == "endswith") {
    const Value prefix = a.get(0, "prefix");
    int64_t offset;
    const std::string text = sub_range(s, a, 1, offset);
    Array options;
    if (prefix.is_string())
      options.push_back(prefix);
    else if (prefix.is_tuple())
      options = prefix.array();
    else
      throw Error(name + " first arg must be str or a tuple of str, not " + prefix.type_name());
    bool hit = false;
    for (const Value& o : options) {
      if (!o.is_string()) throw Error("tuple for " + name + " must only contain str");
      const std::string& p = o.as_string();
      hit = hit ||
            (name == "startswith" ? text.compare(0, p.size(), p) == 0
                                  : text.size() >= p.size() &&
                                        text.compare(text.size() - p.size(), p.size(), p) == 0);
    }
    out = Value(hit);
  } else if (name == "strip" || name == "lstrip" || name == "rstrip") {
    std::string chars;
    const bool whitespace = optional_chars(0, chars);
    out = like(self, py::strip(s, chars, whitespace, name != "rstrip", name != "lstrip"));
  } else if (name == "split" || name == "rsplit") {
    const Value sep = a.get(0, "sep", Value::none());
    const Value max = a.get(1, "maxsplit", Value(int64_t{-1}));
    if (!sep.is_none() && !sep.is_string())
      throw Error("must be str or None, not " + sep.type_name());
    Array parts = py::split(s, sep.is_string() ? sep.as_string() : "", sep.is_none(), max.as_int(),
                            name == "rsplit");
    if (self.is_safe())
      for (Value& p : parts) p = Value::safe_string(p.as_string());
    out = Value(std::move(parts));
  } else if (name == "splitlines") {
    out = Value(py::splitlines(s, a.get(0, "keepends", Value(false)).truthy()));
  } else if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    out = like(self, name == "upper"   ? unicode::upper(s)
                     : name == "lower" ? unicode::lower(s)
                     : name == "title" ? unicode::title(s)
                                       : unicode::capitalize(s));
  } else if (name == "replace") {
    std::string from = string_arg(a, 0, name), to = string_arg(a, 1, name);
    if (self.is_safe()) from = py::escape_html(from), to = py::escape_html(to);
    out = like(self, py::replace(s, from, to, a.get(2, "count", Value(int64_t{-1})).as_int()));
  } else if (name == "join") {
    std::string joined;
    const Array items = iterate(a.get(0, "iterable"));
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        throw Error("sequence item " + std::to_string(i) + ": expected str instance, " +
                    items[i].type_name() + " found");
      if (i) joined += s;
      joined += self.is_safe() && !items[i].is_safe() ? py::escape_html(items[i].as_string())
                                                      : items[i].as_string();
      check_string_size(joined.size());
    }
    out = like(self, std::move(joined));
  } else if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    int64_t offset;
    const std::string text = sub_range(s, a, 1, offset);
    const int64_t at = py::find(text, string_arg(a, 0, name), name[0] == 'r');
    if (at < 0 && name.find("index") != std::string::npos) throw Error("substring not found");
    out = Value(at < 0 ? at : at + offset);
  } else if (name == "count") {
    int64_t offset;
    out = Value(py::count(sub_range(s, a, 1, offset), string_arg(a, 0, name)));
  } else if (name == "center" || name == "ljust" || name == "rjust") {
    const Value fill = a.get(1, "fillchar", Value(" "));
    if (!fill.is_string()) throw Error("The fill character must be a unicode character");
    out = like(self, py::pad(s, a.get(0, "width").as_int(), fill.as_string(),
                             name == "center"  ? 0
                             : name == "ljust" ? -1
                                               : 1));
  } else if (name == "zfill") {
    const int64_t width = a.get(0, "width").as_int();
    const bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
    std::string padded = py::pad(s.substr(sign), width - sign, "0", 1);
    out = like(self, (sign ? s.substr(0, 1) : "") + padded);
  } else if (name == "partition" || name == "rpartition") {
    const std::string& sep = string_arg(a, 0, name);
    if (sep.empty()) throw Error("empty separator");
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    Array parts;
    if (at == std::string::npos)
      parts = name == "partition" ? Array{like(self, s), like(self, ""), like(self, "")}
                                  : Array{like(self, ""), like(self, ""), like(self, s)};
    else
      parts = {like(self, s.substr(0, at)), like(self, sep), like(self, s.substr(at + sep.size()))};
    out = Value::tuple(std::move(parts));
  } else if (name == "removeprefix" || name == "removesuffix") {
    const std::string& affix = string_arg(a, 0, name);
    const bool prefix = name == "removeprefix";
    const bool has = s.size() >= affix.size() &&
                     s.compare(prefix ? 0 : s.size() - affix.size(), affix.size(), affix) == 0;
    out = like(self, !has     ? s
                     : prefix ? s.substr(affix.size())
                              : s.substr(0, s.size() - affix.size()));
  } else if (name == "isupper" || name == "islower") {
    out = Value(name == "isupper" ? unicode::is_upper(s) : unicode::is_lower(s));
  } else if (name == "isspace" || name == "isalnum") {
    bool all = !s.empty();
    for (size_t i = 0; i < s.size() && all;) {
      const char32_t c = unicode::decode(s, i);
      all = name == "isspace" ? unicode::is_space(c) : unicode::is_alnum(c);
    }
    out = Value(all);
  } else {
    return false;
  }
  return true;
}

bool dict_method(const Value& self, const std::string& name, CallArgs& a, Value& out) {
  const Object& o = self.obj();
  if (name == "items") {
    Array pairs;
    pairs.reserve(o.items.size());
    for (const auto& [k, v] : o.items) pairs.push_back(Value::tuple({Value(k), v}));
    out = Value(std::move(pairs));
  } else if (name == "keys" || name == "values") {
    Array items;
    items.reserve(o.items.size());
    for (const auto& [k, v] : o.items) items.push_back(name == "keys" ? Value(k) : v);
    out = Value(std::move(items));
  } else if (name == "get") {
    const Value key = a.get(0, "key");
    const Value* found = key.is_string() ? o.find(key.as_string()) : nullptr;
    out = found ? *found : a.get(1, "default", Value::none());
  } else if (name == "copy") {
    out = Value::object();
    out.obj().items = o.items;
  } else {
    return false;
  }
  return true;
}

bool sequence_method(const Value& self, const std::string& name, CallArgs& a, Value& out) {
  const Array& items = self.array();
  const Value x = a.get(0, "value");
  if (name == "count") {
    out = Value(static_cast<int64_t>(
        std::count_if(items.begin(), items.end(), [&](const Value& v) { return v.equals(x); })));
  } else if (name == "index") {
    auto it = std::find_if(items.begin(), items.end(), [&](const Value& v) { return v.equals(x); });
    if (it == items.end()) throw Error(x.repr() + " is not in " + self.type_name());
    out = Value(static_cast<int64_t>(it - items.begin()));
  } else if (name == "copy" && !self.is_tuple()) {
    out = Value(items);
  } else {
    return false;
  }
  return true;
}

// Whether obj's Python type has a method `name` (safe or not).
bool has_method(const Value& obj, const std::string& name) {
  static const char* kString[] = {
      "startswith", "endswith",     "strip",        "lstrip",  "rstrip",  "split",
      "rsplit",     "splitlines",   "upper",        "lower",   "title",   "capitalize",
      "replace",    "join",         "find",         "rfind",   "index",   "rindex",
      "count",      "center",       "ljust",        "rjust",   "zfill",   "partition",
      "rpartition", "removeprefix", "removesuffix", "isupper", "islower", "isspace",
      "isalnum"};
  static const char* kSequence[] = {"count", "index", "copy"};
  auto in = [&](auto& names) {
    return std::any_of(std::begin(names), std::end(names),
                       [&](const char* n) { return name == n; });
  };
  if (obj.is_string()) return in(kString);
  if (obj.is_dict()) return dict_attribute(name) != DictAttribute::kNone;
  if (obj.is_sequence())
    return (in(kSequence) && !(obj.is_tuple() && name == "copy")) || is_unsafe_method(obj, name);
  return false;
}

}  // namespace

bool call_method(const Value& obj, const std::string& name, CallArgs& args, Value& result) {
  if (is_unsafe_method(obj, name))
    throw Error("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe");
  if (obj.is_string()) return string_method(obj, name, args, result);
  if (obj.is_dict()) return dict_method(obj, name, args, result);
  if (obj.is_sequence()) return sequence_method(obj, name, args, result);
  return false;
}

Value python_attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) undefined_lookup("'" + name + "'");
  if (obj.is_native()) return obj.native_object().attribute(name);
  if (obj.is_namespace()) {
    const Value* v = obj.obj().find(name);
    return v ? *v : Value();
  }
  if (obj.is_group()) {
    if (name == "grouper") return obj.array()[0];
    if (name == "list") return obj.array()[1];
  }
  if (!has_method(obj, name) || is_unsafe_method(obj, name)) return Value();
  const Value self = obj;
  return Value::function([self, name](CallArgs& a) {
    Value out;
    call_method(self, name, a, out);
    return out;
  });
}

Value get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_dict() && !has_method(obj, name)) {
    const Value* v = obj.obj().find(name);
    return v ? *v : Value();
  }
  return python_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) undefined_lookup("[" + key.repr() + "]");
  Value v = obj.get(key);
  if (v.is_undefined() && key.is_string()) return python_attribute(obj, key.as_string());
  return v;
}

Array iterate(const Value& v) {
  if (v.is_iterator()) {  // a generator runs once
    Array items = std::move(v.array());
    v.array().clear();
    return items;
  }
  if (v.is_array()) return v.array();
  if (v.is_dict()) {
    Array keys;
    keys.reserve(v.obj().items.size());
    for (const auto& [k, _] : v.obj().items) keys.emplace_back(k);
    return keys;
  }
  if (v.is_string()) {
    Array chars;
    const std::string& s = v.as_string();
    for (size_t i = 0; i < s.size();) {
      // A Value per character: bounded as split() pieces are.
      if (chars.size() >= (size_t(1) << 20))
        throw Error("a string has too many characters to iterate");
      const size_t start = i;
      unicode::decode(s, i);
      chars.emplace_back(s.substr(start, i - start));
    }
    return chars;
  }
  if (v.is_undefined()) return {};
  throw Error("'" + v.type_name() + "' object is not iterable");
}

bool contains(const Value& haystack, const Value& needle) {
  if (haystack.is_string()) {
    if (!needle.is_string())
      throw Error("'in <string>' requires string as left operand, not " + needle.type_name());
    return haystack.as_string().find(needle.as_string()) != std::string::npos;
  }
  if (haystack.is_dict()) {
    if (needle.is_sequence() && !needle.is_tuple()) throw Error("unhashable type: 'list'");
    if (needle.is_dict()) throw Error("unhashable type: 'dict'");
    return needle.is_string() && haystack.obj().find(needle.as_string()) != nullptr;
  }
  if (haystack.is_iterator()) {  // consumes up to the match, as Python does
    Array& items = haystack.array();
    auto it =
        std::find_if(items.begin(), items.end(), [&](const Value& v) { return v.equals(needle); });
    const bool found = it != items.end();
    items.erase(items.begin(), found ? it + 1 : items.end());
    return found;
  }
  if (haystack.is_array()) {
    for (const Value& v : haystack.array())
      if (v.equals(needle)) return true;
    return false;
  }
  if (haystack.is_undefined()) return false;
  throw Error("argument of type '" + haystack.type_name() + "' is not iterable");
}

Value concatenate(const Value& a, const Value& b) {
  if (a.is_string() && b.is_string()) {
    // Markup + str escapes the str (and str + Markup too): the result is Markup.
    if (a.is_safe() || b.is_safe()) {
      std::string out = a.is_safe() ? a.as_string() : py::escape_html(a.as_string());
      out += b.is_safe() ? b.as_string() : py::escape_html(b.as_string());
      check_string_size(out.size());
      return Value::safe_string(std::move(out));
    }
    check_string_size(a.as_string().size() + b.as_string().size());
    std::string joined;
    joined.reserve(a.as_string().size() + b.as_string().size());
    joined.append(a.as_string()).append(b.as_string());
    return Value(std::move(joined));
  }
  if (a.is_sequence() && b.is_sequence() && a.is_tuple() == b.is_tuple()) {
    Array out = a.array();
    out.insert(out.end(), b.array().begin(), b.array().end());
    return a.is_tuple() ? Value::tuple(std::move(out)) : Value(std::move(out));
  }
  throw Error("unsupported operand types for +: '" + a.type_name() + "' and '" + b.type_name() +
              "'");
}

Value string_format(const Value& format, const Value& args) {
  const Value* mapping = args.is_dict() ? &args : nullptr;
  const Array items = args.is_tuple() ? args.array() : Array{args};
  // Python skips the "not all arguments converted" check when the right side supports [] (a
  // dict, a list, jinja2's Undefined), taking it for a mapping.
  const bool subscriptable =
      args.is_dict() || (args.is_sequence() && !args.is_tuple()) || args.is_undefined();
  return like(format, py::percent_format(format.as_string(), items, mapping, subscriptable));
}

Value repeat(const Value& sequence, int64_t times) {
  if (times < 0) times = 0;
  if (sequence.is_string()) {
    const std::string& s = sequence.as_string();
    if (s.empty() || times == 0) return like(sequence, "");
    if (static_cast<uint64_t>(times) > kMaxStringBytes / s.size()) check_string_size(SIZE_MAX);
    const size_t total = s.size() * static_cast<size_t>(times);
    std::string out = s;  // doubling: log(times) appends
    out.reserve(total);
    while (out.size() < total) out.append(out, 0, std::min(out.size(), total - out.size()));
    return like(sequence, std::move(out));
  }
  const Array& items = sequence.array();
  constexpr uint64_t kMaxItems = 1 << 20;
  if (!items.empty() && static_cast<uint64_t>(times) > kMaxItems / items.size())
    throw Error("a list in the template grows too large");
  Array out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return sequence.is_tuple() ? Value::tuple(std::move(out)) : Value(std::move(out));
}

}  // namespace ember::chat::jinja
