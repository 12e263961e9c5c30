#include "model/grammar/char_ranges.h"

#include <algorithm>
#include <stdexcept>

#include "model/text/utf8.h"

namespace ember::grammar {
namespace {

size_t utf8_length(uint32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

}  // namespace

void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<Sequence>& out) {
  for (uint32_t edge : {0x7Fu, 0x7FFu, 0xFFFFu})
    if (lo <= edge && edge < hi) {
      utf8_sequences(lo, edge, out);
      utf8_sequences(edge + 1, hi, out);
      return;
    }
  const size_t n = utf8_length(lo);
  for (size_t i = 1; i < n; ++i) {
    const uint32_t m = (1u << (6 * i)) - 1;  // the low i continuation bytes
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        utf8_sequences(lo, lo | m, out);
        utf8_sequences((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        utf8_sequences(lo, (hi & ~m) - 1, out);
        utf8_sequences(hi & ~m, hi, out);
        return;
      }
    }
  }
  const std::string a = text::utf8::encode(lo), b = text::utf8::encode(hi);
  Sequence seq;
  for (size_t i = 0; i < n; ++i)
    seq.push_back(Grammar::bytes(
        ByteSet().add_range(static_cast<uint8_t>(a[i]), static_cast<uint8_t>(b[i]))));
  out.push_back(std::move(seq));
}

CodeRanges normalise(CodeRanges r) {
  std::sort(r.begin(), r.end());
  CodeRanges out;
  for (const auto& [lo, hi] : r) {
    if (!out.empty() && lo <= out.back().second + 1)
      out.back().second = std::max(out.back().second, hi);
    else
      out.emplace_back(lo, hi);
  }
  return out;
}

CodeRanges complement(const CodeRanges& r) {
  CodeRanges out, with_surrogates = r;
  with_surrogates.emplace_back(0xD800, 0xDFFF);
  uint32_t next = 0;
  for (const auto& [lo, hi] : normalise(with_surrogates)) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next <= kMaxCodePoint) out.emplace_back(next, kMaxCodePoint);
  return out;
}

std::optional<uint32_t> decode_utf8(std::string_view s, size_t& pos) {
  if (pos >= s.size()) return std::nullopt;
  const auto b = static_cast<uint8_t>(s[pos]);
  if (b < 0x80) return s[pos++];
  const size_t n = b >= 0xC2 && b < 0xE0   ? 2
                   : b >= 0xE0 && b < 0xF0 ? 3
                   : b >= 0xF0 && b < 0xF5 ? 4
                                           : 0;
  if (n == 0 || pos + n > s.size()) return std::nullopt;
  uint32_t cp = b & (0x7F >> n);
  for (size_t i = 1; i < n; ++i) {
    const auto c = static_cast<uint8_t>(s[pos + i]);
    if ((c & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (utf8_length(cp) != n || (cp >= 0xD800 && cp <= 0xDFFF) || cp > kMaxCodePoint)
    return std::nullopt;
  pos += n;
  return cp;
}

uint32_t read_hex_escape(std::string_view s, size_t& pos, size_t digits) {
  uint32_t v = 0;
  for (size_t i = 0; i < digits; ++i, ++pos) {
    const char c = pos < s.size() ? s[pos] : '\0';
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
    if (d < 0) throw std::invalid_argument("expected a hex digit in an escape");
    v = v * 16 + static_cast<uint32_t>(d);
  }
  if (v > kMaxCodePoint) throw std::invalid_argument("an escape beyond U+10FFFF");
  if (v >= 0xD800 && v <= 0xDFFF)
    throw std::invalid_argument("an escape of a surrogate (write the character itself)");
  return v;
}

}  // namespace ember::grammar
