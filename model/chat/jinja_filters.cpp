// jinja2's built-in filters and tests, as they behave in transformers' environment (its own
// tojson; no autoescape, so `escape` and `safe` make Markup that only `+` and `%` treat
// specially). Each follows the jinja2 function of the same name: arguments by position or
// keyword, Undefined and None handled as Python handles them.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <unordered_map>

#include "model/chat/jinja_builtins.h"
#include "model/chat/jinja_unicode.h"

namespace ember::chat::jinja {
namespace {

// jinja2's soft_str: Markup stays Markup, everything else becomes str() (undefined: "").
Value soft_str(const Value& v) {
  return v.is_string() ? v : Value(v.str());
}

// A string result that keeps the Markup-ness of `like` (markupsafe's str methods do).
Value like(const Value& like, std::string s) {
  return like.is_safe() ? Value::safe_string(std::move(s)) : Value(std::move(s));
}

// Python's str.lower() for strings, the value itself otherwise (jinja2's ignore_case).
Value ignore_case(const Value& v) {
  return v.is_string() ? Value(unicode::lower(v.as_string())) : v;
}

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then index 0 (digits are indices).
class AttrGetter {
 public:
  AttrGetter(const Value& attribute, bool lower_case = false, Value fallback = Value::none())
      : lower_case_(lower_case), fallback_(std::move(fallback)) {
    if (attribute.is_undefined() || attribute.is_none()) return;
    if (!attribute.is_string()) {
      parts_.push_back(attribute);
      return;
    }
    for (const Value& part : py::split(attribute.as_string(), ".", false, -1, false)) {
      const std::string& p = part.as_string();
      const bool digits = !p.empty() && std::all_of(p.begin(), p.end(),
                                                    [](char c) { return c >= '0' && c <= '9'; });
      int64_t index;
      if (digits && py::parse_int(p, 10, index))
        parts_.emplace_back(index);
      else
        parts_.push_back(part);
    }
  }
  Value operator()(const Value& item) const {
    Value v = item;
    for (const Value& part : parts_) {
      v = get_item(v, part);
      if (!fallback_.is_none() && v.is_undefined()) v = fallback_;
    }
    return lower_case_ ? ignore_case(v) : v;
  }

 private:
  std::vector<Value> parts_;
  bool lower_case_;
  Value fallback_;
};

bool case_sensitive_arg(const CallArgs& a, size_t index) {
  return a.get(index, "case_sensitive", Value(false)).truthy();
}

// Sorts by key with Python's sorted(): stable, and reverse keeps equal items in order.
Array sorted_by(Host& host, Array items, const std::function<Value(const Value&)>& key,
                bool reverse) {
  host.charge(static_cast<int64_t>(items.size()) * 2);
  std::vector<std::pair<Value, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(key(items[i]), i);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? y.first.compare(x.first) < 0 : x.first.compare(y.first) < 0;
  });
  Array out;
  out.reserve(items.size());
  for (const auto& [_, i] : keyed) out.push_back(std::move(items[i]));
  return out;
}

// Python's hash() refuses lists and dicts (unique, groupby keys).
void check_hashable(const Value& v) {
  if ((v.is_array() && !v.is_tuple()) || v.is_dict())
    throw Error("unhashable type: '" + v.type_name() + "'");
}

// ---- strings ----

Value filter_trim(Host&, const Value& v, CallArgs& a) {
  const Value s = soft_str(v), chars = a.get(0, "chars", Value::none());
  if (!chars.is_none() && !chars.is_string()) throw Error("strip arg must be None or str");
  return like(s, py::strip(s.as_string(), chars.is_string() ? chars.as_string() : "",
                           chars.is_none(), true, true));
}

Value filter_upper(Host&, const Value& v, CallArgs&) {
  const Value s = soft_str(v);
  return like(s, unicode::upper(s.as_string()));
}
Value filter_lower(Host&, const Value& v, CallArgs&) {
  const Value s = soft_str(v);
  return like(s, unicode::lower(s.as_string()));
}
Value filter_capitalize(Host&, const Value& v, CallArgs&) {
  const Value s = soft_str(v);
  return like(s, unicode::capitalize(s.as_string()));
}

// jinja2's title: each piece between runs of whitespace, '-', '(', '{', '[' and '<' gets its
// first character upper-cased and the rest lower-cased (not Python's str.title()).
Value filter_title(Host&, const Value& v, CallArgs&) {
  const std::string s = v.str();
  auto separator = [](char32_t c) {
    return unicode::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
  };
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t j = i;
    const bool sep = separator(unicode::decode(s, j));
    size_t end = j;
    while (end < s.size()) {  // the run of separators or of word characters
      size_t k = end;
      if (separator(unicode::decode(s, k)) != sep) break;
      end = k;
    }
    const std::string_view piece(s.data() + i, end - i);
    out += unicode::upper(piece.substr(0, j - i)) + unicode::lower(piece.substr(j - i));
    i = end;
  }
  return Value(out);
}

Value filter_string(Host&, const Value& v, CallArgs&) {
  return soft_str(v);
}

Value filter_safe(Host&, const Value& v, CallArgs&) {
  return v.is_safe() ? v : Value::safe_string(v.str());
}
Value filter_escape(Host&, const Value& v, CallArgs&) {
  return v.is_safe() ? v : Value::safe_string(py::escape_html(v.str()));
}
Value filter_forceescape(Host&, const Value& v, CallArgs&) {
  return Value::safe_string(py::escape_html(v.str()));
}

Value filter_replace(Host&, const Value& v, CallArgs& a) {
  const Value count = a.get(2, "count", Value::none());
  return Value(py::replace(v.str(), a.get(0, "old").str(), a.get(1, "new").str(),
                           count.is_none() ? -1 : count.as_int()));
}

// jinja2's indent: `width` spaces (or the string `width`) before every line but the first
// (unless `first`), blank lines left alone (unless `blank`).
Value filter_indent(Host&, const Value& v, CallArgs& a) {
  const Value width = a.get(0, "width", Value(int64_t{4}));
  std::string pad;
  if (width.is_string()) {
    pad = width.as_string();
  } else {
    const int64_t n = width.as_int();
    check_string_size(static_cast<uint64_t>(std::max<int64_t>(n, 0)));
    pad.assign(static_cast<size_t>(std::max<int64_t>(n, 0)), ' ');
  }
  const bool first = a.get(1, "first", Value(false)).truthy();
  const bool blank = a.get(2, "blank", Value(false)).truthy();
  if (!v.is_string())  // jinja2 appends "\n" to the value itself
    throw Error("indent needs a string, not " + v.type_name());
  const Value& s = v;
  // jinja2 adds a newline before splitting, so a trailing line break is dropped.
  const Array lines = py::splitlines(s.as_string() + "\n", false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i].as_string();
    if (i) out += '\n';
    if (i > 0 && (blank || !line.empty())) out += pad;
    out += line;
    check_string_size(out.size());
  }
  if (first) out = pad + out;
  return like(s, std::move(out));
}

Value filter_center(Host&, const Value& v, CallArgs& a) {
  const Value s = soft_str(v);
  return like(s, py::pad(s.as_string(), a.get(0, "width", Value(int64_t{80})).as_int(), " ", 0));
}

Value filter_truncate(Host&, const Value& v, CallArgs& a) {
  const int64_t length = a.get(0, "length", Value(int64_t{255})).as_int();
  const bool killwords = a.get(1, "killwords", Value(false)).truthy();
  const std::string end = a.get(2, "end", Value("...")).str();
  const Value leeway_arg = a.get(3, "leeway", Value::none());
  const int64_t leeway = leeway_arg.is_none() ? 5 : leeway_arg.as_int();
  const int64_t end_length = static_cast<int64_t>(unicode::length(end));
  if (length < end_length) throw Error("expected length >= " + std::to_string(end_length));
  if (leeway < 0) throw Error("expected leeway >= 0");
  if (static_cast<int64_t>(v.length()) <= length + leeway) return v;  // any value with a len()
  if (!v.is_string()) throw Error("'" + v.type_name() + "' object has no attribute 'rsplit'");
  const std::string& s = v.as_string();
  std::string kept = py::slice(s, Value(), Value(length - end_length), Value());
  if (!killwords) kept = py::split(kept, " ", false, 1, true)[0].as_string();
  return like(v, kept + (v.is_safe() ? py::escape_html(end) : end));
}

Value filter_wordcount(Host&, const Value& v, CallArgs&) {
  const std::string s = v.str();
  int64_t words = 0;
  bool in_word = false;
  for (size_t i = 0; i < s.size();) {  // runs of \w: alphanumerics and '_'
    const char32_t c = unicode::decode(s, i);
    const bool word = c == '_' || unicode::is_alnum(c);
    words += word && !in_word;
    in_word = word;
  }
  return Value(words);
}

// markupsafe's striptags: comments, then tags, go; whitespace collapses; entities decode.
Value filter_striptags(Host&, const Value& v, CallArgs&) {
  std::string s = v.str();
  for (size_t from = 0;;) {
    const size_t start = s.find("<!--", from);
    if (start == std::string::npos) break;
    const size_t end = s.find("-->", start);
    if (end == std::string::npos) break;
    s.erase(start, end + 3 - start);
    from = start >= 3 ? start - 3 : 0;  // a comment start may straddle the cut
  }
  for (size_t from = 0;;) {
    const size_t start = s.find('<', from);
    if (start == std::string::npos) break;
    const size_t end = s.find('>', start);
    if (end == std::string::npos) break;
    s.erase(start, end + 1 - start);
    from = start;
  }
  std::string collapsed;
  for (const Value& word : py::split(s, "", true, -1, false))
    collapsed += (collapsed.empty() ? "" : " ") + word.as_string();
  return Value(py::unescape_html(collapsed));
}

// urllib.parse.quote: letters, digits and _.-~ stay (and / outside query strings).
std::string url_quote(const Value& v, bool for_query) {
  const std::string s = v.str();
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' ||
        (c == '/' && !for_query)) {
      out += static_cast<char>(c);
    } else if (c == ' ' && for_query) {
      out += '+';
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Value filter_urlencode(Host&, const Value& v, CallArgs&) {
  if (v.is_string() || !(v.is_array() || v.is_dict() || v.is_undefined()))
    return Value(url_quote(v, false));
  std::string out;
  if (v.is_dict()) {
    for (const auto& [k, val] : v.obj().items)
      out += (out.empty() ? "" : "&") + url_quote(Value(k), true) + "=" + url_quote(val, true);
    return Value(out);
  }
  for (const Value& pair : iterate(v)) {
    const Array kv = iterate(pair);
    if (kv.size() != 2) throw Error("urlencode needs (key, value) pairs");
    out += (out.empty() ? "" : "&") + url_quote(kv[0], true) + "=" + url_quote(kv[1], true);
  }
  return Value(out);
}

Value filter_format(Host&, const Value& v, CallArgs& a) {
  if (!a.positional.empty() && !a.keyword.empty())
    throw Error("can't handle positional and keyword arguments at the same time");
  Value args;
  if (!a.keyword.empty()) {
    args = Value::object();
    for (const auto& [k, val] : a.keyword) args.obj().set(k, val);
  } else {
    args = Value::tuple(a.positional);
  }
  return string_format(soft_str(v), args);
}

Value filter_filesizeformat(Host&, const Value& v, CallArgs& a) {
  double bytes;
  if (v.is_number()) {
    bytes = v.as_double();
  } else if (!(v.is_string() && py::parse_float(v.as_string(), bytes))) {
    throw Error("could not convert " + v.type_name() + " to float");
  }
  const bool binary = a.get(0, "binary", Value(false)).truthy();
  const double base = binary ? 1024 : 1000;
  static const char* kBinary[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
  static const char* kDecimal[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  if (bytes == 1) return Value("1 Byte");
  if (bytes < base) return Value(std::to_string(Value(bytes).as_int()) + " Bytes");
  double unit = base;
  int i = 0;
  for (; i < 8; ++i) {
    unit *= base;
    if (bytes < unit) break;
  }
  i = std::min(i, 7);
  if (i == 7 && !(bytes < unit)) unit = std::pow(base, 9);  // past YB: still counted in YB
  const double scaled = base * bytes / unit;
  const char* prefix = binary ? kBinary[i] : kDecimal[i];
  // %.1f of a huge value is long: measure first.
  std::string out(static_cast<size_t>(std::snprintf(nullptr, 0, "%.1f %s", scaled, prefix)), '\0');
  std::snprintf(out.data(), out.size() + 1, "%.1f %s", scaled, prefix);
  return Value(out);
}

// transformers' tojson: json.dumps(x, ensure_ascii, indent, separators, sort_keys).
Value filter_tojson(Host&, const Value& v, CallArgs& a) {
  JsonFormat format;
  format.ensure_ascii = a.get(0, "ensure_ascii", Value(false)).truthy();
  const Value indent = a.get(1, "indent", Value::none());
  if (!indent.is_none()) {
    format.pretty = true;
    format.item_separator = ",";
    if (indent.is_string()) {
      format.indent = indent.as_string();
    } else {
      if (indent.is_float()) throw Error("can't multiply sequence by non-int of type 'float'");
      const int64_t spaces = indent.as_int();
      if (spaces > 1024) throw Error("tojson indent is too large");
      format.indent.assign(static_cast<size_t>(std::max<int64_t>(spaces, 0)), ' ');
    }
  }
  const Value separators = a.get(2, "separators", Value::none());
  if (!separators.is_none()) {
    const Array pair = iterate(separators);
    if (pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string())
      throw Error("tojson separators must be two strings");
    format.item_separator = pair[0].as_string();
    format.key_separator = pair[1].as_string();
  }
  format.sort_keys = a.get(3, "sort_keys", Value(false)).truthy();
  return Value(v.to_json(format));
}

// ---- numbers ----

Value filter_int(Host&, const Value& v, CallArgs& a) {
  const Value fallback = a.get(0, "default", Value(int64_t{0}));
  if (v.is_undefined()) throw Error("int() of an undefined value");
  if (v.is_string()) {
    int64_t n;
    if (py::parse_int(v.as_string(),
                      static_cast<int>(a.get(1, "base", Value(int64_t{10})).as_int()), n))
      return Value(n);
    double d;  // jinja2 then tries int(float(value)): "42.23" gives 42
    if (!py::parse_float(v.as_string(), d) || std::isnan(d)) return fallback;
    if (std::isinf(d)) throw Error("cannot convert float infinity to integer");
    return Value(Value(d).as_int());
  }
  if (v.is_float() && std::isnan(v.as_double())) return fallback;
  if (v.is_float() && std::isinf(v.as_double()))
    throw Error("cannot convert float infinity to integer");
  if (v.is_number()) return Value(v.as_int());
  return fallback;
}

Value filter_float(Host&, const Value& v, CallArgs& a) {
  if (v.is_undefined()) throw Error("float() of an undefined value");
  if (v.is_number()) return Value(v.as_double());
  double d;
  if (v.is_string() && py::parse_float(v.as_string(), d)) return Value(d);
  return a.get(0, "default", Value(0.0));
}

Value filter_abs(Host&, const Value& v, CallArgs&) {
  if (v.is_float()) return Value(std::fabs(v.as_double()));
  if (!v.is_number()) throw Error("bad operand type for abs(): '" + v.type_name() + "'");
  const int64_t n = v.as_int();
  if (n == INT64_MIN) throw Error("integer overflow in abs");
  return Value(n < 0 ? -n : n);
}

// Python's round(x, digits) for floats: correctly rounded, ties to even (printf rounds the
// exact binary value the same way).
double round_float(double x, int64_t digits) {
  if (!std::isfinite(x) || x == 0) return x;
  if (digits >= 0) {
    if (digits > 330) return x;
    char buf[1024];  // 309 integer digits and 330 decimals at most
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(digits), x);
    return std::strtod(buf, nullptr);
  }
  // Rounding to 10^-digits: keep the significant digits above that place.
  int exponent = static_cast<int>(std::floor(std::log10(std::fabs(x))));
  if (std::pow(10.0, exponent) > std::fabs(x)) --exponent;
  const int64_t significant = exponent + 1 + digits;
  if (significant <= 0) {
    const double unit = std::pow(10.0, static_cast<double>(-digits));
    // Only a value over half the unit rounds up to it (a tie goes to 0, the even one).
    const double r = significant == 0 && std::fabs(x) > unit / 2 ? unit : 0.0;
    return std::copysign(r, x);
  }
  // Past 17 significant digits the rounding is below the double's own precision.
  if (significant > 17) return x;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*e", static_cast<int>(significant - 1), x);
  return std::strtod(buf, nullptr);
}

Value filter_round(Host&, const Value& v, CallArgs& a) {
  const int64_t precision = a.get(0, "precision", Value(int64_t{0})).as_int();
  const std::string method = a.get(1, "method", Value("common")).str();
  if (method != "common" && method != "ceil" && method != "floor")
    throw Error("method must be common, ceil or floor");
  if (!v.is_number()) throw Error("type " + v.type_name() + " doesn't define __round__ method");
  if (method == "common") {
    if (v.is_float()) return Value(round_float(v.as_double(), precision));
    const int64_t n = v.as_int();
    if (precision >= 0) return Value(n);
    if (precision < -18) return Value(int64_t{0});
    int64_t unit = 1;
    for (int64_t i = 0; i < -precision; ++i) unit *= 10;
    int64_t q = n / unit, r = n % unit;
    if (r < 0) r += unit, --q;  // floor division
    if (2 * r > unit || (2 * r == unit && (q & 1))) ++q;
    int64_t out;
    if (__builtin_mul_overflow(q, unit, &out)) throw Error("integer overflow in round");
    return Value(out);
  }
  // math.ceil/floor(value * 10**precision) / 10**precision: always a float.
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double scaled = v.as_double() * scale;
  if (!std::isfinite(scaled)) throw Error("cannot convert float infinity or NaN to integer");
  return Value((method == "ceil" ? std::ceil(scaled) : std::floor(scaled)) / scale);
}

// ---- sequences ----

Value filter_length(Host&, const Value& v, CallArgs&) {
  return Value(static_cast<int64_t>(v.length()));
}

Value filter_default(Host&, const Value& v, CallArgs& a) {
  const bool boolean = a.get(1, "boolean", Value(false)).truthy();
  if (v.is_undefined() || (boolean && !v.truthy())) return a.get(0, "default_value", Value(""));
  return v;
}

Value filter_list(Host&, const Value& v, CallArgs&) {
  return Value(iterate(v));
}

Value filter_first(Host&, const Value& v, CallArgs&) {
  if (v.is_iterator()) {  // next() takes one item
    Array& items = v.array();
    if (items.empty()) return Value();
    Value first = items.front();
    items.erase(items.begin());
    return first;
  }
  const Array items = iterate(v);
  return items.empty() ? Value() : items.front();
}

Value filter_last(Host&, const Value& v, CallArgs&) {
  if (v.is_iterator()) throw Error("'generator' object is not reversible");
  const Array items = iterate(v);
  return items.empty() ? Value() : items.back();
}

Value filter_join(Host& host, const Value& v, CallArgs& a) {
  const std::string sep = a.get(0, "d", Value("")).str();
  const Value attribute = a.get(1, "attribute", Value::none());
  const Array items = iterate(v);
  host.charge(static_cast<int64_t>(items.size()));
  const AttrGetter get(attribute);
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += (attribute.is_none() ? items[i] : get(items[i])).str();
    check_string_size(out.size());
  }
  return Value(out);
}

Value filter_reverse(Host&, const Value& v, CallArgs&) {
  if (v.is_string()) return like(v, py::slice(v.as_string(), Value(), Value(), Value(int64_t{-1})));
  if (v.is_none() || v.is_number() || v.is_native() || v.is_namespace())
    throw Error("argument must be iterable");
  const bool list = v.is_iterator();  // reversed() refuses it: jinja2 makes a list
  Array items = iterate(v);
  std::reverse(items.begin(), items.end());
  return list ? Value(std::move(items)) : Value::iterator(std::move(items));
}

Value filter_items(Host&, const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::iterator({});
  if (!v.is_dict()) throw Error("Can only get item pairs from a mapping.");
  Array pairs;
  for (const auto& [k, val] : v.obj().items) pairs.push_back(Value::tuple({Value(k), val}));
  return Value::iterator(std::move(pairs));
}

Value filter_dictsort(Host& host, const Value& v, CallArgs& a) {
  const bool case_sensitive = case_sensitive_arg(a, 0);
  const std::string by = a.get(1, "by", Value("key")).str();
  const bool reverse = a.get(2, "reverse", Value(false)).truthy();
  if (by != "key" && by != "value") throw Error("You can only sort by either \"key\" or \"value\"");
  if (v.is_undefined()) throw Error("cannot look up 'items' on an undefined value");
  if (!v.is_dict()) throw Error("'" + v.type_name() + "' object has no attribute 'items'");
  Array pairs;
  for (const auto& [k, val] : v.obj().items) pairs.push_back(Value::tuple({Value(k), val}));
  const size_t pos = by == "key" ? 0 : 1;
  return Value(sorted_by(
      host, std::move(pairs),
      [&](const Value& p) { return case_sensitive ? p.array()[pos] : ignore_case(p.array()[pos]); },
      reverse));
}

Value filter_sort(Host& host, const Value& v, CallArgs& a) {
  const bool reverse = a.get(0, "reverse", Value(false)).truthy();
  const bool case_sensitive = case_sensitive_arg(a, 1);
  const Value attribute = a.get(2, "attribute", Value::none());
  // jinja2's make_multi_attrgetter: "a,b" sorts by a, then b.
  std::vector<AttrGetter> getters;
  if (attribute.is_string()) {
    for (const Value& part : py::split(attribute.as_string(), ",", false, -1, false))
      getters.emplace_back(part, !case_sensitive);
  } else {
    getters.emplace_back(attribute, !case_sensitive);
  }
  return Value(sorted_by(
      host, iterate(v),
      [&](const Value& item) {
        Array key;
        for (const AttrGetter& get : getters) key.push_back(get(item));
        return Value(std::move(key));
      },
      reverse));
}

Value filter_unique(Host& host, const Value& v, CallArgs& a) {
  const AttrGetter key(a.get(1, "attribute", Value::none()), !case_sensitive_arg(a, 0));
  Array out, seen;
  for (const Value& item : iterate(v)) {
    const Value k = key(item);
    check_hashable(k);
    host.charge(static_cast<int64_t>(seen.size()) / 16 + 1);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return s.equals(k); })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value::iterator(std::move(out));
}

Value min_or_max(Host&, const Value& v, CallArgs& a, bool max) {
  const Array items = iterate(v);
  if (items.empty()) return Value();
  const AttrGetter key(a.get(1, "attribute", Value::none()), !case_sensitive_arg(a, 0));
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (max ? best_key.compare(k) < 0 : k.compare(best_key) < 0) best = i, best_key = std::move(k);
  }
  return items[best];
}
Value filter_min(Host& host, const Value& v, CallArgs& a) {
  return min_or_max(host, v, a, false);
}
Value filter_max(Host& host, const Value& v, CallArgs& a) {
  return min_or_max(host, v, a, true);
}

Value filter_sum(Host& host, const Value& v, CallArgs& a) {
  const Value attribute = a.get(0, "attribute", Value::none());
  Value total = a.get(1, "start", Value(int64_t{0}));
  if (total.is_string()) throw Error("sum() can't sum strings [use ''.join(seq) instead]");
  const AttrGetter get(attribute);
  const Array items = iterate(v);
  host.charge(static_cast<int64_t>(items.size()));
  for (const Value& item : items) {
    const Value x = attribute.is_none() ? item : get(item);
    if (total.is_number() && x.is_number()) {
      if (total.is_float() || x.is_float()) {
        total = Value(total.as_double() + x.as_double());
      } else {
        int64_t r;
        if (__builtin_add_overflow(total.as_int(), x.as_int(), &r))
          throw Error("integer overflow in sum");
        total = Value(r);
      }
    } else {
      total = concatenate(total, x);
    }
  }
  return total;
}

Value filter_map(Host& host, const Value& v, CallArgs& a) {
  if (!v.truthy()) return Value::iterator({});  // jinja2 maps only a true value
  Array out;
  if (a.positional.empty()) {
    const Value attribute = a.get(99, "attribute");
    if (attribute.is_undefined()) throw Error("map requires a filter argument");
    const AttrGetter get(attribute, false, a.get(99, "default", Value::none()));
    for (const Value& item : iterate(v)) out.push_back(get(item));
    return Value::iterator(std::move(out));
  }
  const std::string name = a.positional[0].str();
  CallArgs rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const Value& item : iterate(v)) {
    CallArgs args = rest;
    out.push_back(apply_filter(host, name, item, args));
  }
  return Value::iterator(std::move(out));
}

// select, reject, selectattr, rejectattr: keep the items whose test (or truth) is `keep`.
Value select_or_reject(Host& host, const Value& v, CallArgs& a, bool by_attribute, bool keep) {
  if (!v.truthy()) return Value::iterator({});
  const size_t first = by_attribute ? 1 : 0;
  if (by_attribute && a.positional.empty()) throw Error("Missing parameter for attribute name");
  const AttrGetter get(by_attribute ? a.positional[0] : Value::none());
  const bool has_test = a.positional.size() > first;
  const std::string test_name = has_test ? a.positional[first].str() : "";
  CallArgs rest;
  if (has_test) rest.positional.assign(a.positional.begin() + first + 1, a.positional.end());
  rest.keyword = a.keyword;
  Array out;
  for (const Value& item : iterate(v)) {
    const Value subject = by_attribute ? get(item) : item;
    CallArgs args = rest;
    const bool ok = has_test ? apply_test(host, test_name, subject, args) : subject.truthy();
    if (ok == keep) out.push_back(item);
  }
  return Value::iterator(std::move(out));
}
Value filter_select(Host& h, const Value& v, CallArgs& a) {
  return select_or_reject(h, v, a, false, true);
}
Value filter_reject(Host& h, const Value& v, CallArgs& a) {
  return select_or_reject(h, v, a, false, false);
}
Value filter_selectattr(Host& h, const Value& v, CallArgs& a) {
  return select_or_reject(h, v, a, true, true);
}
Value filter_rejectattr(Host& h, const Value& v, CallArgs& a) {
  return select_or_reject(h, v, a, true, false);
}

Value filter_attr(Host&, const Value& v, CallArgs& a) {
  return python_attribute(v, a.get(0, "name").str());
}

// Lists of `linecount` items; the last one filled up with fill_with when given.
Value filter_batch(Host&, const Value& v, CallArgs& a) {
  const int64_t count = a.get(0, "linecount").as_int();
  const Value fill = a.get(1, "fill_with", Value::none());
  Array out, row;
  for (const Value& item : iterate(v)) {
    if (static_cast<int64_t>(row.size()) == count) {
      out.push_back(Value(std::move(row)));
      row.clear();
    }
    row.push_back(item);
  }
  if (!row.empty()) {
    if (!fill.is_none() && static_cast<int64_t>(row.size()) < count) {
      if (count > (1 << 20)) throw Error("a list in the template grows too large");
      row.resize(static_cast<size_t>(count), fill);
    }
    out.push_back(Value(std::move(row)));
  }
  return Value::iterator(std::move(out));
}

// `slices` lists of about equal length, the first ones one longer.
Value filter_slice(Host&, const Value& v, CallArgs& a) {
  const int64_t slices = a.get(0, "slices").as_int();
  const Value fill = a.get(1, "fill_with", Value::none());
  const Array items = iterate(v);
  if (slices <= 0) throw Error("slice needs a positive number of slices");
  if (slices > (1 << 20)) throw Error("a list in the template grows too large");
  const int64_t length = static_cast<int64_t>(items.size());
  const int64_t per = length / slices, extra = length % slices;
  Array out;
  int64_t offset = 0;
  for (int64_t k = 0; k < slices; ++k) {
    const int64_t start = offset + k * per;
    if (k < extra) ++offset;
    const int64_t end = offset + (k + 1) * per;
    Array part(items.begin() + start, items.begin() + end);
    if (!fill.is_none() && k >= extra) part.push_back(fill);
    out.push_back(Value(std::move(part)));
  }
  return Value::iterator(std::move(out));
}

// Items sorted by an attribute, then grouped: (grouper, list) tuples.
Value filter_groupby(Host& host, const Value& v, CallArgs& a) {
  const Value attribute = a.get(0, "attribute");
  const Value fallback = a.get(1, "default", Value::none());
  const bool case_sensitive = case_sensitive_arg(a, 2);
  const AttrGetter key(attribute, !case_sensitive, fallback), original(attribute, false, fallback);
  const Array items = sorted_by(host, iterate(v), key, false);
  Array out;
  for (size_t i = 0; i < items.size();) {
    const Value k = key(items[i]);
    Array group;
    size_t j = i;
    for (; j < items.size() && key(items[j]).equals(k); ++j) group.push_back(items[j]);
    Value grouper = case_sensitive ? k : original(group.front());
    out.push_back(Value::group(std::move(grouper), std::move(group)));
    i = j;
  }
  return Value(std::move(out));
}

Value filter_unsupported(Host&, const Value&, CallArgs&) {
  throw Error("this jinja2 filter is not supported (pprint, random, urlize, wordwrap, xmlattr)");
}

using FilterFn = Value (*)(Host&, const Value&, CallArgs&);

const std::unordered_map<std::string_view, FilterFn>& filters() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"abs", filter_abs},
      {"attr", filter_attr},
      {"batch", filter_batch},
      {"capitalize", filter_capitalize},
      {"center", filter_center},
      {"count", filter_length},
      {"d", filter_default},
      {"default", filter_default},
      {"dictsort", filter_dictsort},
      {"e", filter_escape},
      {"escape", filter_escape},
      {"filesizeformat", filter_filesizeformat},
      {"first", filter_first},
      {"float", filter_float},
      {"forceescape", filter_forceescape},
      {"format", filter_format},
      {"groupby", filter_groupby},
      {"indent", filter_indent},
      {"int", filter_int},
      {"items", filter_items},
      {"join", filter_join},
      {"last", filter_last},
      {"length", filter_length},
      {"list", filter_list},
      {"lower", filter_lower},
      {"map", filter_map},
      {"max", filter_max},
      {"min", filter_min},
      {"pprint", filter_unsupported},
      {"random", filter_unsupported},
      {"reject", filter_reject},
      {"rejectattr", filter_rejectattr},
      {"replace", filter_replace},
      {"reverse", filter_reverse},
      {"round", filter_round},
      {"safe", filter_safe},
      {"select", filter_select},
      {"selectattr", filter_selectattr},
      {"slice", filter_slice},
      {"sort", filter_sort},
      {"string", filter_string},
      {"striptags", filter_striptags},
      {"sum", filter_sum},
      {"title", filter_title},
      {"tojson", filter_tojson},
      {"trim", filter_trim},
      {"truncate", filter_truncate},
      {"unique", filter_unique},
      {"upper", filter_upper},
      {"urlencode", filter_urlencode},
      {"urlize", filter_unsupported},
      {"wordcount", filter_wordcount},
      {"wordwrap", filter_unsupported},
      {"xmlattr", filter_unsupported},
  };
  return table;
}

// ---- tests ----

// Python's value % m for the odd, even and divisibleby tests (floats too: 3.0 is odd): exact
// for integers, the remainder with the divisor's sign.
double python_mod(const Value& v, const Value& m) {
  if (!v.is_number() || !m.is_number())
    throw Error("unsupported operand type(s) for %: '" + v.type_name() + "' and '" + m.type_name() +
                "'");
  if (!v.is_float() && !m.is_float()) {
    const int64_t a = v.as_int(), b = m.as_int();
    if (b == 0) throw Error("integer division or modulo by zero");
    if (b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return static_cast<double>(r);
  }
  const double x = v.as_double(), y = m.as_double();
  if (y == 0) throw Error("float modulo");
  double r = std::fmod(x, y);
  if (r != 0 && ((r < 0) != (y < 0))) r += y;
  return r;
}

bool test_sameas(const Value& v, const Value& other) {
  // Identity: None, True and False are singletons; Python caches small ints.
  if (v.kind() != other.kind()) return false;
  if (v.is_none() || v.is_bool() || v.is_undefined()) return v.equals(other);
  if (v.is_int()) return v.equals(other) && v.as_int() >= -5 && v.as_int() <= 256;
  if (v.is_array() || v.is_object() || v.is_function() || v.is_native()) {
    if (v.is_array()) return &v.array() == &other.array();
    if (v.is_object()) return &v.obj() == &other.obj();
    return v.equals(other);
  }
  return false;
}

bool compare_test(const std::string& op, const Value& v, const Value& other) {
  if (v.is_undefined() || other.is_undefined()) throw Error("cannot compare an undefined value");
  const int c = v.compare(other);
  return op == "lt" ? c < 0 : op == "le" ? c <= 0 : op == "gt" ? c > 0 : c >= 0;
}

}  // namespace

bool has_filter(const std::string& name) {
  return filters().count(name) > 0;
}

Value apply_filter(Host& host, const std::string& name, const Value& v, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) throw Error("no filter named '" + name + "'");
  return it->second(host, v, args);
}

bool has_test(const std::string& name) {
  static const char* kNames[] = {"boolean",     "callable", "defined",   "divisibleby", "eq",
                                 "equalto",     "==",       "escaped",   "even",        "false",
                                 "filter",      "float",    "ge",        ">=",          "gt",
                                 "greaterthan", ">",        "in",        "integer",     "iterable",
                                 "le",          "<=",       "lower",     "lt",          "lessthan",
                                 "<",           "mapping",  "ne",        "!=",          "none",
                                 "number",      "odd",      "sameas",    "sequence",    "string",
                                 "test",        "true",     "undefined", "upper"};
  return std::any_of(std::begin(kNames), std::end(kNames),
                     [&](const char* n) { return name == n; });
}

bool apply_test(Host&, const std::string& name, const Value& v, CallArgs& a) {
  const Value other = a.get(0, "other");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_dict();
  // iter() works on these (an undefined value iterates as empty).
  if (name == "iterable")
    return v.is_array() || v.is_dict() || v.is_string() || v.is_undefined() || v.is_native();
  // len() and [] work on these.
  if (name == "sequence")
    return v.is_sequence() || v.is_dict() || v.is_string() || v.is_undefined();
  // Functions, callable objects, and jinja2's Undefined (it has __call__, which raises).
  if (name == "callable")
    return v.is_function() || v.is_undefined() || (v.is_native() && v.native_object().callable());
  if (name == "escaped") return v.is_safe();
  if (name == "even" || name == "odd")
    return python_mod(v, Value(int64_t{2})) == (name == "odd" ? 1 : 0);
  if (name == "divisibleby") return python_mod(v, a.get(0, "num")) == 0;
  if (name == "equalto" || name == "eq" || name == "==") return v.equals(other);
  if (name == "ne" || name == "!=") return !v.equals(other);
  if (name == "lt" || name == "lessthan" || name == "<") return compare_test("lt", v, other);
  if (name == "le" || name == "<=") return compare_test("le", v, other);
  if (name == "gt" || name == "greaterthan" || name == ">") return compare_test("gt", v, other);
  if (name == "ge" || name == ">=") return compare_test("ge", v, other);
  if (name == "sameas") return test_sameas(v, other);
  if (name == "in") return contains(a.get(0, "seq"), v);
  if (name == "lower") return unicode::is_lower(v.str());
  if (name == "upper") return unicode::is_upper(v.str());
  if (name == "filter" || name == "test") {  // `value in environment.filters`: a dict lookup
    check_hashable(v);
    return v.is_string() &&
           (name == "filter" ? has_filter(v.as_string()) : has_test(v.as_string()));
  }
  throw Error("no test named '" + name + "'");
}

}  // namespace ember::chat::jinja
