// Sets of Unicode code points as a byte grammar needs them: ranges (sorted, merged, complemented)
// and their UTF-8 encodings as sequences of byte sets, one set per byte (GBNF classes, JSON
// Schema patterns).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/grammar/grammar.h"

namespace ember::grammar {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

using CodeRanges = std::vector<std::pair<uint32_t, uint32_t>>;  // inclusive ranges

// Sorted, with overlapping and adjacent ranges merged.
CodeRanges normalise(CodeRanges ranges);
// Every code point from 0 to U+10FFFF not in `ranges`, surrogates (U+D800-DFFF, which UTF-8
// never encodes) left out.
CodeRanges complement(const CodeRanges& ranges);
// The code point whose UTF-8 encoding starts at text[pos] (pos moves past it), or nullopt for
// bytes that are not UTF-8 (a stray continuation byte, a truncated or overlong sequence, a
// surrogate, beyond U+10FFFF).
std::optional<uint32_t> decode_utf8(std::string_view text, size_t& pos);
// The code point written as `digits` hex digits at text[pos] (an \xHH or \uHHHH escape; pos
// moves past them). Throws std::invalid_argument for a missing digit, a value beyond U+10FFFF or
// a surrogate.
uint32_t read_hex_escape(std::string_view text, size_t& pos, size_t digits);
// The UTF-8 encodings of lo..hi as sequences of byte sets (the usual split: first by encoded
// length, then until every byte position spans a plain range), appended to `out`.
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<Sequence>& out);

}  // namespace ember::grammar
