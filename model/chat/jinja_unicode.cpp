#include "model/chat/jinja_unicode.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/text/utf8.h"

namespace ember::chat::jinja::unicode {
namespace {

enum Flag : uint8_t {
  kCased = 1,
  kCaseIgnorable = 2,
  kLower = 4,
  kUpper = 8,
  kTitle = 16,
  kAlnum = 32,
  kSpace = 64,
  kPrintable = 128,
};

// Characters first..last, every stride-th, map to themselves plus delta.
struct CaseRun {
  uint32_t first, last;
  uint8_t stride;
  int32_t delta;
};
// A character whose mapping is listed in full (several characters, or a title-case exception).
struct FullCase {
  uint32_t from;
  char32_t to[3];
};

#include "model/chat/jinja_unicode_data.inc"

uint8_t flags(char32_t c) {
  if (c >= kRawByte) return 0;
  // The last change at or before c.
  const uint32_t key = (static_cast<uint32_t>(c) << 8) | 0xff;
  const uint32_t* it =
      std::upper_bound(std::begin(kPropertyChanges), std::end(kPropertyChanges), key);
  return it == std::begin(kPropertyChanges) ? 0 : static_cast<uint8_t>(it[-1] & 0xff);
}

template <size_t N>
const FullCase* find_full(const FullCase (&table)[N], char32_t c) {
  const FullCase* it = std::lower_bound(std::begin(table), std::end(table), c,
                                        [](const FullCase& f, char32_t x) { return f.from < x; });
  return it != std::end(table) && it->from == c ? it : nullptr;
}

template <size_t N>
char32_t map_runs(const CaseRun (&table)[N], char32_t c) {
  const CaseRun* it = std::upper_bound(std::begin(table), std::end(table), c,
                                       [](char32_t x, const CaseRun& r) { return x < r.first; });
  if (it == std::begin(table)) return c;
  const CaseRun& r = it[-1];
  if (c > r.last || (c - r.first) % r.stride != 0) return c;
  return static_cast<char32_t>(static_cast<int64_t>(c) + r.delta);
}

void append_full(std::string& out, const FullCase& f) {
  for (char32_t x : f.to)
    if (x) append(out, x);
}

void append_upper(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  } else if (const FullCase* f = c < kRawByte ? find_full(kUpperFull, c) : nullptr) {
    append_full(out, *f);
  } else {
    append(out, c < kRawByte ? map_runs(kUpperRuns, c) : c);
  }
}

void append_title(std::string& out, char32_t c) {
  if (c >= 0x80 && c < kRawByte)
    if (const FullCase* f = find_full(kTitleSpecial, c)) return append_full(out, *f);
  append_upper(out, c);
}

// The lower-case form of a capital sigma at s[at, next): final (ς) when a cased letter comes
// before it and none after, skipping case-ignorable characters (CPython's
// handle_capital_sigma). `cased_before` says whether the last character before it that is not
// case-ignorable is cased.
char32_t lower_sigma(std::string_view s, size_t next, bool cased_before) {
  if (!cased_before) return 0x3c3;
  for (size_t j = next; j < s.size();) {
    const uint8_t f = flags(decode(s, j));
    if (!(f & kCaseIgnorable)) return (f & kCased) ? 0x3c3 : 0x3c2;
  }
  return 0x3c2;
}

// Lower-cases the character c (which ends at s[next]), tracking what lower_sigma needs.
void append_lower(std::string& out, std::string_view s, size_t next, char32_t c,
                  bool& cased_before) {
  if (c < 0x80) {
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  } else if (c == 0x3a3) {
    append(out, lower_sigma(s, next, cased_before));
  } else if (c >= kRawByte) {
    append(out, c);
  } else if (const FullCase* f = find_full(kLowerFull, c)) {
    append_full(out, *f);
  } else {
    append(out, map_runs(kLowerRuns, c));
  }
  const uint8_t f = flags(c);
  if (!(f & kCaseIgnorable)) cased_before = f & kCased;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

}  // namespace

char32_t decode(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  size_t n = lead < 0x80   ? 1
             : lead < 0xc2 ? 0
             : lead < 0xe0 ? 2
             : lead < 0xf0 ? 3
             : lead < 0xf5 ? 4
                           : 0;
  if (n == 1) return s[i++];
  char32_t c = n == 2 ? lead & 0x1f : n == 3 ? lead & 0x0f : lead & 0x07;
  bool valid = n != 0 && i + n <= s.size();
  for (size_t k = 1; valid && k < n; ++k) {
    valid = (byte(i + k) & 0xc0) == 0x80;
    c = (c << 6) | (byte(i + k) & 0x3f);
  }
  // Overlong forms, surrogates and values past U+10FFFF are invalid too.
  if (valid && ((n == 3 && (c < 0x800 || (c >= 0xd800 && c < 0xe000))) ||
                (n == 4 && (c < 0x10000 || c > 0x10ffff))))
    valid = false;
  if (!valid) return kRawByte + byte(i++);
  i += n;
  return c;
}

char32_t decode_before(std::string_view s, size_t& i) {
  // A lead byte is never a continuation byte, so the forward decoding restarts at every lead:
  // the character ending at i starts at the nearest lead within 4 bytes if that sequence is
  // valid and ends exactly at i, else the byte before i stands alone.
  for (size_t back = 2; back <= 4 && back <= i; ++back) {
    const unsigned char b = static_cast<unsigned char>(s[i - back]);
    if ((b & 0xc0) == 0x80) continue;
    size_t j = i - back;
    const char32_t c = decode(s, j);
    if (j == i) {
      i -= back;
      return c;
    }
    break;
  }
  --i;
  const unsigned char b = static_cast<unsigned char>(s[i]);
  return b < 0x80 ? b : kRawByte + b;
}

void append(std::string& out, char32_t c) {
  if (c < 0x80)
    out += static_cast<char>(c);
  else if (c >= kRawByte)  // a byte that was not UTF-8 goes back as it came
    out += static_cast<char>(c - kRawByte);
  else
    out += text::utf8::encode(c);
}

std::string encode(char32_t c) {
  std::string out;
  append(out, c);
  return out;
}

size_t length(std::string_view s) {
  if (is_ascii(s)) return s.size();
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) decode(s, i);
  return n;
}

size_t offset_of(std::string_view s, size_t index) {
  size_t i = 0;
  for (size_t k = 0; k < index && i < s.size(); ++k) decode(s, i);
  return i;
}

bool is_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
  return flags(c) & kSpace;
}
bool is_alnum(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return flags(c) & kAlnum;
}
bool is_cased(char32_t c) {
  return flags(c) & kCased;
}
bool is_printable(char32_t c) {
  if (c < 0x80) return c >= 0x20 && c < 0x7f;
  return flags(c) & kPrintable;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return out;
  }
  bool cased_before = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = decode(s, i);
    append_lower(out, s, i, c, cased_before);
  }
  return out;
}

std::string upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) append_upper(out, decode(s, i));
  return out;
}

std::string title(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool previous_is_cased = false, cased_before = false;
  for (size_t i = 0; i < s.size();) {
    const char32_t c = decode(s, i);
    if (previous_is_cased) {
      append_lower(out, s, i, c, cased_before);
    } else {
      append_title(out, c);
      const uint8_t f = flags(c);
      if (!(f & kCaseIgnorable)) cased_before = f & kCased;
    }
    previous_is_cased = is_cased(c);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool cased_before = false;
  for (size_t i = 0; i < s.size();) {
    const bool first = i == 0;
    const char32_t c = decode(s, i);
    if (first) {
      append_title(out, c);
      const uint8_t f = flags(c);
      if (!(f & kCaseIgnorable)) cased_before = f & kCased;
    } else {
      append_lower(out, s, i, c, cased_before);
    }
  }
  return out;
}

bool is_lower(std::string_view s) {
  bool cased = false;
  for (size_t i = 0; i < s.size();) {
    const uint8_t f = flags(decode(s, i));
    if (f & (kUpper | kTitle)) return false;
    cased = cased || (f & kLower);
  }
  return cased;
}

bool is_upper(std::string_view s) {
  bool cased = false;
  for (size_t i = 0; i < s.size();) {
    const uint8_t f = flags(decode(s, i));
    if (f & (kLower | kTitle)) return false;
    cased = cased || (f & kUpper);
  }
  return cased;
}

}  // namespace ember::chat::jinja::unicode
