#include "model/chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "model/chat/jinja_unicode.h"

namespace ember::chat::jinja {

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value::Value(bool b) : kind_(Kind::kBool), b_(b) {}
Value::Value(int64_t v) : kind_(Kind::kInt), i_(v) {}
Value::Value(double v) : kind_(Kind::kFloat), d_(v) {}
Value::Value(std::string s) : kind_(Kind::kString), s_(std::move(s)) {}
Value::Value(Array items) : kind_(Kind::kArray), a_(std::make_shared<Array>(std::move(items))) {}

Value Value::object() {
  Value v;
  v.kind_ = Kind::kObject;
  v.o_ = std::make_shared<Object>();
  return v;
}
Value Value::make_namespace() {
  Value v = object();
  v.o_->is_namespace = true;
  return v;
}
Value Value::function(Function f) {
  Value v;
  v.kind_ = Kind::kFunction;
  v.f_ = std::make_shared<Function>(std::move(f));
  return v;
}
Value Value::safe_string(std::string s) {
  Value v(std::move(s));
  v.flags_ = kSafe;
  return v;
}
Value Value::tuple(Array items) {
  Value v(std::move(items));
  v.flags_ = kTuple;
  return v;
}
Value Value::group(Value grouper, Array list) {
  Value v(Array{std::move(grouper), Value(std::move(list))});
  v.flags_ = kGroup;
  return v;
}
Value Value::iterator(Array items) {
  Value v(std::move(items));
  v.flags_ = kIterator;
  return v;
}
Value Value::native(std::shared_ptr<Native> n) {
  Value v;
  v.kind_ = Kind::kNative;
  v.n_ = std::move(n);
  return v;
}

Value Native::call(CallArgs&) {
  throw Error("'" + type_name() + "' object is not callable");
}

bool Value::is_namespace() const {
  return kind_ == Kind::kObject && o_->is_namespace;
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return d_ != 0;
    case Kind::kString:
      return !s_.empty();
    case Kind::kArray:
      return (flags_ & kIterator) || !a_->empty();
    case Kind::kObject:
      // A namespace is an object without __len__ or __bool__: always true.
      return o_->is_namespace || !o_->items.empty();
    case Kind::kFunction:
    case Kind::kNative:
      return true;
  }
  return false;
}

int64_t Value::as_int() const {
  if (kind_ == Kind::kInt) return i_;
  if (kind_ == Kind::kBool) return b_;
  if (kind_ == Kind::kFloat) {
    // ±2^63 are the bounds; NaN fails both comparisons.
    if (!(d_ > -9223372036854775808.0 && d_ < 9223372036854775808.0))
      throw Error("a number too large for an integer");
    return static_cast<int64_t>(d_);
  }
  throw Error("expected a number, got " + type_name());
}

double Value::as_double() const {
  if (kind_ == Kind::kFloat) return d_;
  return static_cast<double>(as_int());
}

size_t utf8_length(const std::string& s) {
  return unicode::length(s);
}

size_t Value::length() const {
  switch (kind_) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return utf8_length(s_);
    case Kind::kArray:
      if (!(flags_ & kIterator)) return a_->size();
      break;
    case Kind::kObject:
      if (!o_->is_namespace) return o_->items.size();
      break;
    default:
      break;
  }
  throw Error("object of type '" + type_name() + "' has no len()");
}

Value Value::get(const Value& key) const {
  if (kind_ == Kind::kObject) {
    if (!key.is_string()) return Value();
    const Value* v = o_->find(key.s_);
    return v ? *v : Value();
  }
  if (is_sequence() && (key.is_int() || key.is_bool())) {
    int64_t n = static_cast<int64_t>(a_->size()), i = key.as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value();
    return (*a_)[i];
  }
  if (kind_ == Kind::kString && (key.is_int() || key.is_bool())) {
    // Characters, not bytes: walk from the nearer end, only as far as the index.
    int64_t i = key.as_int();
    size_t at, end;
    if (i >= 0) {
      at = 0;
      for (; i > 0 && at < s_.size(); --i) unicode::decode(s_, at);
      if (at >= s_.size()) return Value();
      end = at;
      unicode::decode(s_, end);
    } else {
      end = s_.size();
      for (; i < -1 && end > 0; ++i) unicode::decode_before(s_, end);
      if (end == 0) return Value();
      at = end;
      unicode::decode_before(s_, at);
    }
    Value c(s_.substr(at, end - at));
    c.flags_ = flags_ & kSafe;  // Markup's characters are Markup
    return c;
  }
  return Value();
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // The shortest digits that read back (as Python's repr), placed as Python places them:
  // positional from 1e-4 up to 1e16, with an exponent outside.
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view text(buf, end - buf);
  std::string out;
  if (text[0] == '-') {
    out += '-';
    text.remove_prefix(1);
  }
  const size_t e = text.find('e');
  std::string digits;
  for (char c : text.substr(0, e))
    if (c != '.') digits += c;
  const int exponent = std::atoi(std::string(text.substr(e + 1)).c_str());
  const int point = exponent + 1;  // digits before the decimal point
  if (point <= -4 || point > 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp;
  }
  if (point <= 0) return out + "0." + std::string(static_cast<size_t>(-point), '0') + digits;
  if (static_cast<size_t>(point) >= digits.size())
    return out + digits + std::string(point - digits.size(), '0') + ".0";
  return out + digits.substr(0, point) + "." + digits.substr(point);
}

namespace {

void append_hex_escape(std::string& out, char prefix, unsigned value, int width) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\%c%0*x", prefix, width, value);
  out += buf;
}

// Python's repr() of a str: single quotes unless the text has ' and no "; characters that are
// not printable as \x, \u or \U escapes.
void append_quoted(std::string& out, const std::string& s) {
  const char q =
      (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  out += q;
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const char32_t c = unicode::decode(s, i);
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c >= unicode::kRawByte || unicode::is_printable(c)) {
      out.append(s, start, i - start);
    } else if (c <= 0xff) {
      append_hex_escape(out, 'x', c, 2);
    } else if (c <= 0xffff) {
      append_hex_escape(out, 'u', c, 4);
    } else {
      append_hex_escape(out, 'U', c, 8);
    }
  }
  out += q;
}

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    // json.dumps escapes control characters, quotes and backslashes; with ensure_ascii also
    // everything from DEL up.
    if (b >= 0x20 && b != '"' && b != '\\' && (b < 0x7f || (b == 0x7f && !ensure_ascii))) {
      out += static_cast<char>(b);
      ++i;
      continue;
    }
    if (b >= 0x80 && !ensure_ascii) {  // a character beyond ASCII, as it is
      const size_t start = i;
      unicode::decode(s, i);
      out.append(s, start, i - start);
      continue;
    }
    const char32_t c = unicode::decode(s, i);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c >= unicode::kRawByte) {
          out += static_cast<char>(c - unicode::kRawByte);
        } else if (c >= 0x10000) {  // a surrogate pair, as Python writes it
          const char32_t v = c - 0x10000;
          append_hex_escape(out, 'u', 0xd800 | (v >> 10), 4);
          append_hex_escape(out, 'u', 0xdc00 | (v & 0x3ff), 4);
        } else {
          append_hex_escape(out, 'u', c, 4);
        }
    }
  }
  out += '"';
}

void check_growth(const std::string& out, int depth) {
  if (out.size() > kMaxStringBytes) throw Error("a value is too large to print");
  if (depth > kMaxNesting) throw Error("a value is nested too deeply to print");
}

}  // namespace

std::string Value::str() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return b_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(i_);
    case Kind::kFloat:
      return format_float(d_);
    case Kind::kString:
      return s_;
    default:
      return repr();
  }
}

std::string Value::repr() const {
  std::string out;
  append_repr(out, 0);
  return out;
}

void Value::append_repr(std::string& out, int depth) const {
  check_growth(out, depth);
  switch (kind_) {
    case Kind::kUndefined:
      out += "Undefined";
      return;
    case Kind::kString:
      if (flags_ & kSafe) out += "Markup(";
      append_quoted(out, s_);
      if (flags_ & kSafe) out += ")";
      return;
    case Kind::kArray: {
      if (flags_ & kIterator) {
        out += "<generator object>";
        return;
      }
      const bool tuple = is_tuple();
      out += tuple ? '(' : '[';
      for (size_t i = 0; i < a_->size(); ++i) {
        if (i) out += ", ";
        (*a_)[i].append_repr(out, depth + 1);
      }
      if (tuple && a_->size() == 1) out += ',';
      out += tuple ? ')' : ']';
      return;
    }
    case Kind::kObject:
      if (o_->is_namespace) out += "<Namespace ";
      out += '{';
      for (size_t i = 0; i < o_->items.size(); ++i) {
        if (i) out += ", ";
        append_quoted(out, o_->items[i].first);
        out += ": ";
        o_->items[i].second.append_repr(out, depth + 1);
      }
      out += '}';
      if (o_->is_namespace) out += '>';
      return;
    case Kind::kFunction:
      out += "<function>";
      return;
    case Kind::kNative:
      out += n_->repr();
      return;
    default:
      out += str();
  }
}

std::string Value::to_json(const JsonFormat& format) const {
  std::string out;
  append_json(out, format, 0);
  return out;
}

// json.dumps(): with an indent, each item on its own line, `indent` once more per level.
void Value::append_json(std::string& out, const JsonFormat& format, int depth) const {
  check_growth(out, depth);
  auto newline = [&](int level) {
    if (!format.pretty) return;
    out += '\n';
    for (int i = 0; i < level; ++i) out += format.indent;
  };
  auto separator = [&](size_t i, int level) {
    if (i) out += format.item_separator;
    newline(level);
  };
  switch (kind_) {
    case Kind::kNone:
      out += "null";
      return;
    case Kind::kBool:
      out += b_ ? "true" : "false";
      return;
    case Kind::kInt:
      out += std::to_string(i_);
      return;
    case Kind::kFloat:
      out += std::isfinite(d_) ? format_float(d_)
                               : (std::isnan(d_) ? "NaN" : (d_ > 0 ? "Infinity" : "-Infinity"));
      return;
    case Kind::kString:
      append_json_string(out, s_, format.ensure_ascii);
      return;
    case Kind::kArray:
      if (flags_ & kIterator) break;
      if (a_->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < a_->size(); ++i) {
        separator(i, depth + 1);
        (*a_)[i].append_json(out, format, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    case Kind::kObject: {
      if (o_->is_namespace) break;
      if (o_->items.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& item : o_->items) items.push_back(&item);
      if (format.sort_keys)
        std::sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        separator(i, depth + 1);
        append_json_string(out, items[i]->first, format.ensure_ascii);
        out += format.key_separator;
        items[i]->second.append_json(out, format, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    }
    default:
      break;
  }
  throw Error("Object of type " + type_name() + " is not JSON serializable");
}

bool Value::equals(const Value& o) const {
  return equals(o, 0);
}

bool Value::equals(const Value& o, int depth) const {
  if (depth > kMaxNesting) throw Error("values are nested too deeply to compare");
  if (is_number() && o.is_number()) {
    if (kind_ == Kind::kFloat || o.kind_ == Kind::kFloat) return as_double() == o.as_double();
    return as_int() == o.as_int();
  }
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return s_ == o.s_;
    case Kind::kArray: {
      if ((flags_ | o.flags_) & kIterator) return a_ == o.a_;
      if (is_tuple() != o.is_tuple() || a_->size() != o.a_->size()) return false;
      for (size_t i = 0; i < a_->size(); ++i)
        if (!(*a_)[i].equals((*o.a_)[i], depth + 1)) return false;
      return true;
    }
    case Kind::kObject: {
      if (o_->is_namespace || o.o_->is_namespace) return o_ == o.o_;
      if (o_->items.size() != o.o_->items.size()) return false;
      for (const auto& [k, v] : o_->items) {
        const Value* other = o.o_->find(k);
        if (!other || !v.equals(*other, depth + 1)) return false;
      }
      return true;
    }
    case Kind::kFunction:
      return f_ == o.f_;
    case Kind::kNative:
      return n_ == o.n_;
    default:
      return false;
  }
}

int Value::compare(const Value& o) const {
  return compare(o, 0);
}

int Value::compare(const Value& o, int depth) const {
  if (depth > kMaxNesting) throw Error("values are nested too deeply to compare");
  if (is_number() && o.is_number()) {
    double a = as_double(), b = o.as_double();
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  // UTF-8 byte order is code point order, which is how Python orders strings.
  if (is_string() && o.is_string()) return s_ < o.s_ ? -1 : (s_ > o.s_ ? 1 : 0);
  if (is_sequence() && o.is_sequence() && is_tuple() == o.is_tuple()) {
    // Python: the first items that differ (by ==) decide; equal items need not be orderable.
    for (size_t i = 0; i < a_->size() && i < o.a_->size(); ++i)
      if (!(*a_)[i].equals((*o.a_)[i], depth + 1)) return (*a_)[i].compare((*o.a_)[i], depth + 1);
    return a_->size() < o.a_->size() ? -1 : (a_->size() > o.a_->size() ? 1 : 0);
  }
  throw Error("'<' not supported between instances of '" + type_name() + "' and '" + o.type_name() +
              "'");
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return is_safe() ? "Markup" : "str";
    case Kind::kArray:
      return is_iterator() ? "generator" : is_tuple() ? "tuple" : "list";
    case Kind::kObject:
      return is_namespace() ? "Namespace" : "dict";
    case Kind::kFunction:
      return "function";
    case Kind::kNative:
      return n_->type_name();
  }
  return "?";
}

const Value* Object::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Object::set(const std::string& key, Value v) {
  for (auto& [k, existing] : items)
    if (k == key) {
      existing = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

Value CallArgs::get(size_t index, const std::string& name, Value fallback) const {
  for (const auto& [k, v] : keyword)
    if (k == name) return v;
  if (index < positional.size()) return positional[index];
  return fallback;
}

}  // namespace ember::chat::jinja
