// Python's str operations on UTF-8 text (see jinja_builtins.h): positions and lengths count
// characters, and whitespace is Unicode whitespace, as in Python.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "model/chat/jinja_builtins.h"
#include "model/chat/jinja_unicode.h"

namespace ember::chat::jinja {

void check_string_size(size_t bytes) {
  if (bytes > kMaxStringBytes) throw Error("a string in the template grows too large");
}

namespace py {
namespace {

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Lists built from one string (split, splitlines, its characters) stay below this many items:
// each is a Value of its own, so a hostile template could otherwise exhaust memory long before
// the work budget runs out.
constexpr size_t kMaxPieces = size_t(1) << 20;

void add_piece(Array& out, std::string_view piece) {
  if (out.size() >= kMaxPieces) throw Error("a string splits into too many pieces");
  out.emplace_back(std::string(piece));
}

// A predicate over characters: Unicode whitespace, or membership in `chars`.
class CharSet {
 public:
  CharSet(std::string_view chars, bool whitespace) : whitespace_(whitespace) {
    for (size_t i = 0; i < chars.size();) set_.push_back(unicode::decode(chars, i));
  }
  bool operator()(char32_t c) const {
    return whitespace_ ? unicode::is_space(c)
                       : std::find(set_.begin(), set_.end(), c) != set_.end();
  }

 private:
  bool whitespace_;
  std::vector<char32_t> set_;
};

}  // namespace

std::string strip(std::string_view s, std::string_view chars, bool whitespace, bool left,
                  bool right) {
  // Only the stripped ends are looked at: from the front, and backwards from the end.
  size_t b = 0, e = s.size();
  if (whitespace) {  // ASCII bytes decide most of it without decoding
    if (left)
      while (b < e && static_cast<unsigned char>(s[b]) < 0x80 && unicode::is_space(s[b])) ++b;
    if (right)
      while (e > b && static_cast<unsigned char>(s[e - 1]) < 0x80 && unicode::is_space(s[e - 1]))
        --e;
    const bool more_left = left && b < e && static_cast<unsigned char>(s[b]) >= 0x80;
    const bool more_right = right && e > b && static_cast<unsigned char>(s[e - 1]) >= 0x80;
    if (!more_left && !more_right) return std::string(s.substr(b, e - b));
  }
  const CharSet strip_set(chars, whitespace);
  if (left) {
    for (size_t i = b; i < e;) {
      if (!strip_set(unicode::decode(s, i))) break;
      b = i;
    }
  }
  if (right) {
    for (size_t i = e; i > b;) {
      if (!strip_set(unicode::decode_before(s, i))) break;
      e = i;
    }
  }
  return std::string(s.substr(b, std::max(b, e) - b));
}

Array split(std::string_view s, std::string_view sep, bool whitespace, int64_t max_split,
            bool from_right) {
  Array out;
  auto full = [&] { return max_split >= 0 && static_cast<int64_t>(out.size()) == max_split; };
  if (whitespace) {
    // Words between runs of whitespace; after max_split splits, the rest as it is (only the
    // whitespace next to the last split goes).
    if (!from_right) {
      size_t i = 0;
      for (;;) {
        size_t word = i;
        while (i < s.size() && unicode::is_space(unicode::decode(s, i))) word = i;
        if (word == s.size()) break;
        if (full()) {
          add_piece(out, s.substr(word));
          break;
        }
        size_t end = i = word;
        while (i < s.size() && !unicode::is_space(unicode::decode(s, i))) end = i;
        add_piece(out, s.substr(word, end - word));
        i = end;
      }
    } else {
      size_t i = s.size();
      for (;;) {
        size_t end = i;
        while (i > 0 && unicode::is_space(unicode::decode_before(s, i))) end = i;
        if (end == 0) break;
        if (full()) {
          add_piece(out, s.substr(0, end));
          break;
        }
        size_t word = i = end;
        while (i > 0 && !unicode::is_space(unicode::decode_before(s, i))) word = i;
        add_piece(out, s.substr(word, end - word));
        i = word;
      }
      std::reverse(out.begin(), out.end());
    }
    return out;
  }
  if (sep.empty()) throw Error("empty separator");
  if (!from_right) {
    size_t pos = 0;
    for (;;) {
      const size_t hit = s.find(sep, pos);
      if (hit == std::string_view::npos || full()) {
        add_piece(out, s.substr(pos));
        return out;
      }
      add_piece(out, s.substr(pos, hit - pos));
      pos = hit + sep.size();
    }
  }
  size_t end = s.size();
  for (;;) {
    const size_t hit = end >= sep.size() ? s.substr(0, end).rfind(sep) : std::string_view::npos;
    if (hit == std::string_view::npos || full()) {
      add_piece(out, s.substr(0, end));
      break;
    }
    add_piece(out, s.substr(hit + sep.size(), end - hit - sep.size()));
    end = hit;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

Array splitlines(std::string_view s, bool keep_ends) {
  Array out;
  size_t line = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const char32_t c = unicode::decode(s, i);
    const bool boundary = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c ||
                          (c >= 0x1c && c <= 0x1e) || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!boundary) continue;
    if (c == '\r' && i < s.size() && s[i] == '\n') ++i;
    add_piece(out, s.substr(line, (keep_ends ? i : start) - line));
    line = i;
  }
  if (line < s.size()) add_piece(out, s.substr(line));
  return out;
}

std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count) {
  std::string out;
  if (from.empty()) {  // `to` goes before every character and at the end
    for (size_t i = 0; i <= s.size();) {
      if (count != 0) {
        out += to;
        check_string_size(out.size());
        if (count > 0) --count;
      }
      if (i == s.size()) break;
      const size_t start = i;
      unicode::decode(s, i);
      out.append(s.substr(start, i - start));
    }
    return out;
  }
  size_t done = 0, pos;
  while (count != 0 && (pos = s.find(from, done)) != std::string_view::npos) {
    out.append(s.substr(done, pos - done)).append(to);
    check_string_size(out.size());
    done = pos + from.size();
    if (count > 0) --count;
  }
  out.append(s.substr(done));
  check_string_size(out.size());
  return out;
}

int64_t find(std::string_view s, std::string_view sub, bool from_right) {
  const size_t pos = from_right ? s.rfind(sub) : s.find(sub);
  if (pos == std::string_view::npos) return -1;
  return static_cast<int64_t>(unicode::length(s.substr(0, pos)));
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(unicode::length(s)) + 1;
  int64_t n = 0;
  for (size_t p = s.find(sub); p != std::string_view::npos; p = s.find(sub, p + sub.size())) ++n;
  return n;
}

std::string pad(std::string_view s, int64_t width, std::string_view fill, int where) {
  if (unicode::length(fill) != 1)
    throw Error("The fill character must be exactly one character long");
  const int64_t len = static_cast<int64_t>(unicode::length(s));
  if (width <= len) return std::string(s);
  const int64_t margin = width - len;
  if (static_cast<uint64_t>(margin) > kMaxStringBytes) check_string_size(SIZE_MAX);
  check_string_size(s.size() + static_cast<uint64_t>(margin) * fill.size());
  // CPython's str.center puts the odd space on the left when width is odd.
  const int64_t left = where < 0 ? 0 : where > 0 ? margin : margin / 2 + (margin & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = left; i < margin; ++i) out += fill;
  return out;
}

SliceRange slice_range(int64_t n, const Value& start, const Value& stop, const Value& step) {
  const int64_t st = step.is_undefined() || step.is_none() ? 1 : step.as_int();
  if (st == 0) throw Error("slice step cannot be zero");
  if (st == INT64_MIN) throw Error("slice step is too large");
  auto bound = [&](const Value& x, int64_t fallback) {
    if (x.is_undefined() || x.is_none()) return fallback;
    int64_t i = x.as_int();
    if (i < 0) i = i < -n ? -n - 1 : i + n;
    return st > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t b = bound(start, st > 0 ? 0 : n - 1), e = bound(stop, st > 0 ? n : -1);
  const int64_t count =
      st > 0 ? (b < e ? (e - b - 1) / st + 1 : 0) : (b > e ? (b - e - 1) / -st + 1 : 0);
  return {b, e, st, count};
}

std::string slice(std::string_view s, const Value& start, const Value& stop, const Value& step) {
  const bool ascii = is_ascii(s);
  const int64_t n = static_cast<int64_t>(ascii ? s.size() : unicode::length(s));
  const auto [b, e, st, count] = slice_range(n, start, stop, step);
  std::string out;
  if (ascii) {
    for (int64_t k = 0; k < count; ++k) out += s[b + k * st];
    return out;
  }
  if (st > 0) {  // walk forward, keeping every st-th character from b
    size_t at = unicode::offset_of(s, static_cast<size_t>(std::min(b, e)));
    for (int64_t k = b; k < e && at < s.size(); ++k) {
      const size_t from = at;
      unicode::decode(s, at);
      if ((k - b) % st == 0) out.append(s.substr(from, at - from));
    }
    return out;
  }
  // Backwards: the characters from b down to e (exclusive), every -st-th.
  size_t at = unicode::offset_of(s, static_cast<size_t>(b + 1));
  for (int64_t k = b; k > e; --k) {
    const size_t to = at;
    unicode::decode_before(s, at);
    if ((b - k) % -st == 0) out.append(s.substr(at, to - at));
  }
  return out;
}

std::string escape_html(std::string_view s) {
  std::string out;
  out.reserve(s.size());
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

std::string unescape_html(std::string_view s) {
  static const std::pair<std::string_view, char32_t> kNamed[] = {
      {"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}, {"nbsp;", 0xa0}};
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    std::string_view rest = s.substr(i + 1);
    bool done = false;
    for (const auto& [name, c] : kNamed)
      if (rest.substr(0, name.size()) == name) {
        unicode::append(out, c);
        i += name.size();
        done = true;
        break;
      }
    if (!done && !rest.empty() && rest[0] == '#') {
      const bool hex = rest.size() > 1 && (rest[1] == 'x' || rest[1] == 'X');
      size_t k = hex ? 2 : 1;
      uint32_t v = 0;
      const size_t digits_from = k;
      while (k < rest.size() && k < digits_from + 8 &&
             (hex ? std::isxdigit(static_cast<unsigned char>(rest[k]))
                  : std::isdigit(static_cast<unsigned char>(rest[k])))) {
        v = v * (hex ? 16 : 10) +
            static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(rest[k]))
                                      ? rest[k] - '0'
                                      : (rest[k] | 0x20) - 'a' + 10);
        ++k;
      }
      if (k > digits_from) {
        if (k < rest.size() && rest[k] == ';') ++k;
        // html.unescape turns invalid code points into U+FFFD.
        unicode::append(out, (v == 0 || v > 0x10ffff || (v >= 0xd800 && v < 0xe000)) ? 0xfffd : v);
        i += k;
        done = true;
      }
    }
    if (!done) out += '&';
  }
  return out;
}

namespace {

// Digits of `text` in `base`, with Python's underscores (single, between digits; one may follow
// a base prefix).
bool parse_digits(std::string_view text, int base, bool after_prefix, int64_t& out) {
  if (text.empty()) return false;
  uint64_t v = 0;
  bool digit_before = after_prefix;  // "0x_1" is valid
  bool any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '_') {
      if (!digit_before || i + 1 == text.size()) return false;
      digit_before = false;
      continue;
    }
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'z' ? c - 'a' + 10
            : c >= 'A' && c <= 'Z' ? c - 'A' + 10
                                   : 99;
    if (d >= base) return false;
    if (v > (UINT64_MAX - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base))
      throw Error("an integer too large for the template");
    v = v * base + d;
    digit_before = any = true;
  }
  if (!any) return false;
  if (v > static_cast<uint64_t>(INT64_MAX)) throw Error("an integer too large for the template");
  out = static_cast<int64_t>(v);
  return true;
}

}  // namespace

bool parse_int(std::string_view s, int base, int64_t& out) {
  if (base != 0 && (base < 2 || base > 36)) return false;
  std::string text = strip(s, "", true, true, true);
  std::string_view t = text;
  bool negative = false;
  if (!t.empty() && (t[0] == '+' || t[0] == '-')) {
    negative = t[0] == '-';
    t.remove_prefix(1);
  }
  auto prefix = [&](char p) { return t.size() >= 2 && t[0] == '0' && (t[1] | 0x20) == p; };
  bool after_prefix = false;
  if (base == 0) {
    if (prefix('x'))
      base = 16;
    else if (prefix('o'))
      base = 8;
    else if (prefix('b'))
      base = 2;
    if (base != 0) {
      t.remove_prefix(2);
      after_prefix = true;
    } else {
      base = 10;  // without a prefix, no leading zeros (except zero itself)
      if (t.size() > 1 && t[0] == '0' && t.find_first_not_of("0_") != std::string_view::npos)
        return false;
    }
  } else if ((base == 16 && prefix('x')) || (base == 8 && prefix('o')) ||
             (base == 2 && prefix('b'))) {
    t.remove_prefix(2);
    after_prefix = true;
  }
  int64_t v;
  if (!parse_digits(t, base, after_prefix, v)) return false;
  out = negative ? -v : v;
  return true;
}

bool parse_float(std::string_view s, double& out) {
  std::string text = strip(s, "", true, true, true);
  std::string clean;
  size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) clean += text[i++];
  std::string word;
  for (size_t k = i; k < text.size(); ++k)
    word += static_cast<char>(std::tolower(static_cast<unsigned char>(text[k])));
  if (word == "inf" || word == "infinity" || word == "nan") {
    out = word == "nan" ? NAN : INFINITY;
    if (clean == "-") out = -out;
    return true;
  }
  // digits [. digits] [e [sign] digits], underscores only between digits
  bool digits = false, point = false, exponent = false, exponent_digits = false;
  char previous = 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      (exponent ? exponent_digits : digits) = true;
      clean += c;
    } else if (c == '_') {
      if (!(previous >= '0' && previous <= '9') || i + 1 >= text.size() ||
          !(text[i + 1] >= '0' && text[i + 1] <= '9'))
        return false;
    } else if (c == '.' && !point && !exponent) {
      point = true;
      clean += c;
    } else if ((c == 'e' || c == 'E') && digits && !exponent) {
      exponent = true;
      clean += 'e';
      if (i + 1 < text.size() && (text[i + 1] == '+' || text[i + 1] == '-')) clean += text[++i];
    } else {
      return false;
    }
    previous = c;
  }
  if (!digits || (exponent && !exponent_digits)) return false;
  out = std::strtod(clean.c_str(), nullptr);
  return true;
}

namespace {

// One conversion of printf-style formatting: %[flags][width][.precision]type.
struct Spec {
  bool left = false, plus = false, space = false, alternate = false, zero = false;
  int64_t width = 0, precision = -1;
  char type = 0;
};

void justify(std::string& out, const std::string& body, const Spec& spec) {
  const int64_t len = static_cast<int64_t>(unicode::length(body));
  check_string_size(out.size() + body.size() +
                    static_cast<uint64_t>(std::max<int64_t>(spec.width, 0)));
  if (spec.width > len && !spec.left) out.append(spec.width - len, ' ');
  out += body;
  if (spec.width > len && spec.left) out.append(spec.width - len, ' ');
}

std::string format_integer(int64_t v, const Spec& spec) {
  const int base = spec.type == 'x' || spec.type == 'X' ? 16 : spec.type == 'o' ? 8 : 10;
  uint64_t magnitude = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  std::string digits;
  do {
    const int d = static_cast<int>(magnitude % base);
    digits += static_cast<char>(d < 10 ? '0' + d : (spec.type == 'X' ? 'A' : 'a') + d - 10);
    magnitude /= base;
  } while (magnitude);
  std::reverse(digits.begin(), digits.end());
  if (spec.precision > static_cast<int64_t>(digits.size())) {
    check_string_size(static_cast<uint64_t>(spec.precision));
    digits.insert(0, spec.precision - digits.size(), '0');
  }
  std::string sign = v < 0 ? "-" : spec.plus ? "+" : spec.space ? " " : "";
  if (spec.alternate && base != 10)
    sign += spec.type == 'o' ? "0o" : spec.type == 'X' ? "0X" : "0x";
  if (spec.zero && !spec.left && spec.width > static_cast<int64_t>(sign.size() + digits.size())) {
    check_string_size(static_cast<uint64_t>(spec.width));
    digits.insert(0, spec.width - sign.size() - digits.size(), '0');
  }
  return sign + digits;
}

std::string format_double(double v, const Spec& spec) {
  std::string format = "%";
  if (spec.left) format += '-';
  if (spec.plus) format += '+';
  if (spec.space) format += ' ';
  if (spec.alternate) format += '#';
  if (spec.zero) format += '0';
  const int64_t precision = spec.precision < 0 ? 6 : spec.precision;
  check_string_size(static_cast<uint64_t>(spec.width) + static_cast<uint64_t>(precision));
  format += "*.*";
  format += spec.type;
  const int width = static_cast<int>(spec.width);
  const int n = std::snprintf(nullptr, 0, format.c_str(), width, static_cast<int>(precision), v);
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), format.c_str(), width, static_cast<int>(precision), v);
  out.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace

std::string percent_format(std::string_view format, const Array& args, const Value* mapping,
                           bool allow_unused) {
  std::string out;
  size_t next_arg = 0;
  auto take = [&]() -> const Value& {
    if (next_arg >= args.size()) throw Error("not enough arguments for format string");
    return args[next_arg++];
  };
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c != '%') {
      out += c;
      continue;
    }
    if (++i >= format.size()) throw Error("incomplete format");
    const Value* arg = nullptr;
    Value keyed;
    if (format[i] == '(') {
      if (!mapping) throw Error("format requires a mapping");
      int depth = 1;
      const size_t key_start = ++i;
      while (i < format.size() && depth > 0) {
        depth += format[i] == '(' ? 1 : format[i] == ')' ? -1 : 0;
        ++i;
      }
      if (depth > 0) throw Error("incomplete format key");
      const std::string key(format.substr(key_start, i - 1 - key_start));
      const Value* found = mapping->obj().find(key);
      if (!found) throw Error("KeyError: '" + key + "'");
      keyed = *found;
      arg = &keyed;
    }
    Spec spec;
    for (; i < format.size(); ++i) {
      const char f = format[i];
      if (f == '-')
        spec.left = true;
      else if (f == '+')
        spec.plus = true;
      else if (f == ' ')
        spec.space = true;
      else if (f == '#')
        spec.alternate = true;
      else if (f == '0')
        spec.zero = true;
      else
        break;
    }
    auto number = [&](int64_t& into) {
      if (i < format.size() && format[i] == '*') {
        into = take().as_int();
        ++i;
        return;
      }
      into = 0;
      while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) {
        into = into * 10 + (format[i++] - '0');
        check_string_size(static_cast<uint64_t>(into));
      }
    };
    number(spec.width);
    if (spec.width < -static_cast<int64_t>(kMaxStringBytes) ||
        spec.width > static_cast<int64_t>(kMaxStringBytes))
      check_string_size(SIZE_MAX);
    if (spec.width < 0) {
      spec.left = true;
      spec.width = -spec.width;
    }
    if (i < format.size() && format[i] == '.') {
      ++i;
      number(spec.precision);
    }
    while (i < format.size() && (format[i] == 'h' || format[i] == 'l' || format[i] == 'L')) ++i;
    if (i >= format.size()) throw Error("incomplete format");
    spec.type = format[i];
    if (spec.type == '%') {
      out += '%';
      continue;
    }
    const Value& v = arg ? *arg : take();
    switch (spec.type) {
      case 's':
      case 'r':
      case 'a': {
        std::string text = spec.type == 's' ? v.str() : v.repr();
        if (spec.precision >= 0) text = slice(text, Value(), Value(spec.precision), Value());
        justify(out, text, spec);
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        const bool integral = spec.type == 'x' || spec.type == 'X' || spec.type == 'o';
        if (!v.is_number() || (integral && v.is_float()))
          throw Error(std::string("%") + spec.type + " format: a number is required, not " +
                      v.type_name());
        if (v.is_float() && !std::isfinite(v.as_double()))
          throw Error("cannot convert float infinity or NaN to integer");
        Spec digits = spec;
        digits.width = spec.left ? 0 : spec.width;
        justify(out, format_integer(v.as_int(), digits), spec);
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G':
        if (!v.is_number())
          throw Error(std::string("%") + spec.type + " format: a real number is required, not " +
                      v.type_name());
        out += format_double(v.as_double(), spec);
        break;
      case 'c': {
        std::string ch;
        if (v.is_string() && unicode::length(v.as_string()) == 1) {
          ch = v.as_string();
        } else if (v.is_int() && v.as_int() >= 0 && v.as_int() <= 0x10ffff) {
          ch = unicode::encode(static_cast<char32_t>(v.as_int()));
        } else {
          throw Error("%c requires an int or a unicode character");
        }
        justify(out, ch, spec);
        break;
      }
      default:
        throw Error(std::string("unsupported format character '") + spec.type + "'");
    }
    check_string_size(out.size());
  }
  if (!allow_unused && next_arg < args.size())
    throw Error("not all arguments converted during string formatting");
  return out;
}

}  // namespace py
}  // namespace ember::chat::jinja
