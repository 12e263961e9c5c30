// Python's str semantics on UTF-8 text, for the Jinja interpreter (internal to
// model/chat/jinja_*.cpp): characters are code points, and whitespace, case and letters follow
// Python's unicodedata (jinja_unicode_data.inc, generated from it by jinja_unicode_gen.py), so
// `trim`, `split()`, `lower`, `title` and friends give what jinja2 gives.
//
// Bytes that are not valid UTF-8 decode to one "raw byte" character each and encode back to the
// same byte, so any input round-trips unchanged.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ember::chat::jinja::unicode {

// Code points from kRawByte up stand for one undecodable byte (kRawByte + the byte).
constexpr char32_t kRawByte = 0x110000;

// The character starting at s[i]; advances i past it. i must be < s.size().
char32_t decode(std::string_view s, size_t& i);
// The character that ends at s[i]; moves i back to its start. i must be > 0.
char32_t decode_before(std::string_view s, size_t& i);
// Appends a character (or raw byte) as UTF-8.
void append(std::string& out, char32_t c);
std::string encode(char32_t c);

// Characters in s (code points; each invalid byte counts as one).
size_t length(std::string_view s);
// The byte offset of the character with index `index` (s.size() when index >= length).
size_t offset_of(std::string_view s, size_t index);

// Character classes as Python's str.isspace(), isalnum(), isprintable() (what repr() leaves
// unescaped), and the Cased property.
bool is_space(char32_t c);
bool is_alnum(char32_t c);
bool is_printable(char32_t c);
bool is_cased(char32_t c);

// Python's str.lower(), upper(), title(), capitalize(): full case mappings (ß upper-cases to
// SS) and the final-sigma rule of lower().
std::string lower(std::string_view s);
std::string upper(std::string_view s);
std::string title(std::string_view s);
std::string capitalize(std::string_view s);
// Python's str.islower() / isupper(): some cased character and none of the other case.
bool is_lower(std::string_view s);
bool is_upper(std::string_view s);

}  // namespace ember::chat::jinja::unicode
