// The built-ins of the Jinja interpreter (internal to model/chat/jinja_*.cpp): filters and tests
// (jinja_filters.cpp), attribute lookup and the methods of strings, dicts and lists
// (jinja_methods.cpp), and Python's string operations they share (jinja_strings.cpp). Each
// follows what jinja2 does under transformers' ImmutableSandboxedEnvironment.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model/chat/jinja_value.h"

namespace ember::chat::jinja {

// What the built-ins need from the renderer.
class Host {
 public:
  virtual ~Host() = default;
  // Counts work against the render's budget (RenderLimits); throws jinja::Error when spent.
  virtual void charge(int64_t units) = 0;
};

// Throws unless a string of `bytes` may be built.
void check_string_size(size_t bytes);

// ---- values (jinja_methods.cpp) ----

// Python's iter(): list and tuple items, dict keys, string characters, nothing for undefined
// (jinja2's Undefined iterates as empty), an iterator's items (leaving it empty); throws for
// everything else, None included.
Array iterate(const Value& v);
// Python's `needle in haystack` (throws where Python raises, e.g. `1 in 'abc'`, `'x' in None`).
bool contains(const Value& haystack, const Value& needle);

// `obj.name` in the sandbox: a Python attribute first (a dict's items/keys/values/get methods,
// a string's methods, a namespace's or loop's attributes), then the dict key; methods that
// mutate are unsafe and give undefined. Throws for undefined `obj` (jinja2's Undefined).
Value get_attribute(const Value& obj, const std::string& name);
// `obj[key]`: the key or index first, then for a string key the attribute. Undefined when
// neither exists; throws for undefined `obj`.
Value get_item(const Value& obj, const Value& key);
// The Python attribute `name` of obj only (the `attr` filter): no dict keys.
Value python_attribute(const Value& obj, const std::string& name);
// obj.name(args) when `name` is a method of obj's Python type (str, dict, list, tuple): sets
// `result` and returns true, without building a bound method. False otherwise.
bool call_method(const Value& obj, const std::string& name, CallArgs& args, Value& result);

// Python's + and % on values that are not both numbers: concatenation (Markup escaping the
// plain side) and printf-style string formatting. Throws for other kinds.
Value concatenate(const Value& a, const Value& b);
Value string_format(const Value& format, const Value& args);
// Python's str * int and list * int.
Value repeat(const Value& sequence, int64_t times);

// ---- filters and tests (jinja_filters.cpp) ----

bool has_filter(const std::string& name);
bool has_test(const std::string& name);
Value apply_filter(Host& host, const std::string& name, const Value& v, CallArgs& args);
bool apply_test(Host& host, const std::string& name, const Value& v, CallArgs& args);

// ---- Python's str (jinja_strings.cpp) ----

namespace py {

// str.strip/lstrip/rstrip: `chars` are the characters to remove (Unicode whitespace when
// `whitespace`).
std::string strip(std::string_view s, std::string_view chars, bool whitespace, bool left,
                  bool right);
// str.split / rsplit: on runs of Unicode whitespace when `whitespace`, else on `sep` (which must
// not be empty); at most max_split splits when >= 0.
Array split(std::string_view s, std::string_view sep, bool whitespace, int64_t max_split,
            bool from_right);
// str.splitlines(): on \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029.
Array splitlines(std::string_view s, bool keep_ends);
// str.replace: at most `count` (all when negative) non-overlapping occurrences.
std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count);
// str.find / rfind / count in characters; -1 when absent.
int64_t find(std::string_view s, std::string_view sub, bool from_right);
int64_t count(std::string_view s, std::string_view sub);
// str.center / ljust / rjust with a one-character fill.
std::string pad(std::string_view s, int64_t width, std::string_view fill, int where);
// Python's slice of a sequence of n items: the first index, the end (exclusive), the step and
// how many items it takes (null/undefined bounds are absent; the count is computed so that a
// huge step cannot overflow an index). Throws for a zero step.
struct SliceRange {
  int64_t begin, end, step, count;
};
SliceRange slice_range(int64_t n, const Value& start, const Value& stop, const Value& step);
// s[start:stop:step] in characters.
std::string slice(std::string_view s, const Value& start, const Value& stop, const Value& step);
// markupsafe's escape: & < > ' " as entities.
std::string escape_html(std::string_view s);
// html.unescape for the entities markup commonly holds: numeric ones and amp, lt, gt, quot,
// apos, nbsp.
std::string unescape_html(std::string_view s);
// Python's int(str, base): whitespace, a sign, underscores between digits, 0x/0o/0b prefixes
// (required or allowed as base says; base 0 guesses). False when the text is not a number.
bool parse_int(std::string_view s, int base, int64_t& out);
// Python's float(str): decimal and exponent forms, inf, nan, underscores between digits.
bool parse_float(std::string_view s, double& out);
// The printf-style formatting of `format % args` (positional items, or a mapping for %(key)s).
// Arguments left over are an error unless `allow_unused` (a mapping-like right side).
std::string percent_format(std::string_view format, const Array& args, const Value* mapping,
                           bool allow_unused);

}  // namespace py

}  // namespace ember::chat::jinja
