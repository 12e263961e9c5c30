#include "model/chat/jinja_value.h"

#include <cmath>
#include <cstdio>

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
      return !a_->empty();
    case Kind::kObject:
      return !o_->items.empty();
    case Kind::kFunction:
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
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

size_t Value::length() const {
  switch (kind_) {
    case Kind::kString:
      return utf8_length(s_);
    case Kind::kArray:
      return a_->size();
    case Kind::kObject:
      return o_->items.size();
    default:
      throw Error("object of type " + type_name() + " has no length");
  }
}

Value Value::get(const Value& key) const {
  if (kind_ == Kind::kObject) {
    if (!key.is_string()) return Value();
    const Value* v = o_->find(key.s_);
    return v ? *v : Value();
  }
  if ((kind_ == Kind::kArray || kind_ == Kind::kString) && (key.is_int() || key.is_bool())) {
    int64_t n = static_cast<int64_t>(kind_ == Kind::kArray ? a_->size() : s_.size());
    int64_t i = key.as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value();
    if (kind_ == Kind::kArray) return (*a_)[i];
    return Value(std::string(1, s_[i]));  // byte indexing; templates index ASCII only
  }
  return Value();
}

namespace {

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[40];
  for (int digits = 1; digits <= 17; ++digits) {  // Python repr: the shortest that reads back
    std::snprintf(buf, sizeof buf, "%.*g", digits, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  size_t e = s.find('e');
  if (e != std::string::npos) {  // Python writes 1e+20 as 1e+20 and 1e-05 as 1e-05
    std::string mantissa = s.substr(0, e), exponent = s.substr(e + 1);
    char sign = exponent[0];
    std::string digits = exponent.substr(1);
    while (digits.size() > 2 && digits[0] == '0') digits.erase(0, 1);
    if (digits.size() < 2) digits = "0" + digits;
    return mantissa + "e" + sign + digits;
  }
  if (s.find('.') == std::string::npos) s += ".0";
  return s;
}

std::string quote_python(const std::string& s) {
  // Python repr of a str: single quotes unless the text has ' and no ".
  char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == q || c == '\\')
      out += '\\', out += c;
    else if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else
      out += c;
  }
  return out + q;
}

void append_json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
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
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
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

namespace {

void check_growth(const std::string& out, int depth) {
  if (out.size() > kMaxStringBytes) throw Error("a value is too large to print");
  if (depth > kMaxNesting) throw Error("a value is nested too deeply to print");
}

}  // namespace

void Value::append_repr(std::string& out, int depth) const {
  check_growth(out, depth);
  switch (kind_) {
    case Kind::kString:
      out += quote_python(s_);
      return;
    case Kind::kArray:
      out += '[';
      for (size_t i = 0; i < a_->size(); ++i) {
        if (i) out += ", ";
        (*a_)[i].append_repr(out, depth + 1);
      }
      out += ']';
      return;
    case Kind::kObject:
      out += '{';
      for (size_t i = 0; i < o_->items.size(); ++i) {
        if (i) out += ", ";
        out += quote_python(o_->items[i].first) + ": ";
        o_->items[i].second.append_repr(out, depth + 1);
      }
      out += '}';
      return;
    case Kind::kFunction:
      out += "<function>";
      return;
    default:
      out += str();
  }
}

std::string Value::to_json(int indent) const {
  std::string out;
  append_json(out, indent, 0);
  return out;
}

void Value::append_json(std::string& out, int indent, int depth) const {
  check_growth(out, depth);
  auto newline = [&](int d) {
    if (indent >= 0) out += "\n" + std::string(static_cast<size_t>(indent) * d, ' ');
  };
  switch (kind_) {
    case Kind::kUndefined:
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
      append_json_string(out, s_);
      return;
    case Kind::kArray:
      if (a_->empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < a_->size(); ++i) {
        if (i) out += indent < 0 ? ", " : ",";
        newline(depth + 1);
        (*a_)[i].append_json(out, indent, depth + 1);
      }
      newline(depth);
      out += ']';
      return;
    case Kind::kObject:
      if (o_->items.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < o_->items.size(); ++i) {
        if (i) out += indent < 0 ? ", " : ",";
        newline(depth + 1);
        append_json_string(out, o_->items[i].first);
        out += ": ";
        o_->items[i].second.append_json(out, indent, depth + 1);
      }
      newline(depth);
      out += '}';
      return;
    case Kind::kFunction:
      throw Error("a function cannot be written as JSON");
  }
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
  if (kind_ != o.kind_) return (is_undefined() && o.is_undefined());
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return s_ == o.s_;
    case Kind::kArray: {
      if (a_->size() != o.a_->size()) return false;
      for (size_t i = 0; i < a_->size(); ++i)
        if (!(*a_)[i].equals((*o.a_)[i], depth + 1)) return false;
      return true;
    }
    case Kind::kObject: {
      if (o_->items.size() != o.o_->items.size()) return false;
      for (const auto& [k, v] : o_->items) {
        const Value* other = o.o_->find(k);
        if (!other || !v.equals(*other, depth + 1)) return false;
      }
      return true;
    }
    default:
      return this == &o;
  }
}

int Value::compare(const Value& o) const {
  if (is_number() && o.is_number()) {
    double a = as_double(), b = o.as_double();
    return a < b ? -1 : (a > b ? 1 : 0);
  }
  if (is_string() && o.is_string()) return s_ < o.s_ ? -1 : (s_ > o.s_ ? 1 : 0);
  if (is_array() && o.is_array()) {
    for (size_t i = 0; i < a_->size() && i < o.a_->size(); ++i)
      if (int c = (*a_)[i].compare((*o.a_)[i])) return c;
    return a_->size() < o.a_->size() ? -1 : (a_->size() > o.a_->size() ? 1 : 0);
  }
  throw Error("cannot compare " + type_name() + " with " + o.type_name());
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kArray:
      return "list";
    case Kind::kObject:
      return is_namespace() ? "Namespace" : "dict";
    case Kind::kFunction:
      return "function";
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
