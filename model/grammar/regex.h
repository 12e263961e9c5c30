// JSON Schema `pattern`: the regular subset of ECMA-262 expressions a grammar can express, parsed
// into a tree of character sets, sequences, alternatives and repetitions (json_schema.cpp turns
// it into the rules of a JSON string). Supported: literals, `.`, classes `[a-z]` `[^…]`, escapes
// \d \D \w \W \s \S \t \n \r \f \v \0 \xHH \uHHHH and escaped punctuation, groups `( )` `(?: )`
// `(?<name> )`, `|`, quantifiers `* + ? {n} {n,} {n,m}` (lazy forms match the same strings), and
// `^` / `$` at the very start / end. A pattern without them matches anywhere in the string, as
// JSON Schema says. Back-references, look-around, word boundaries and anchors elsewhere are
// refused (std::invalid_argument): they are not regular, or not at a fixed place.
#pragma once

#include <string_view>
#include <vector>

#include "model/grammar/char_ranges.h"

namespace ember::grammar {

struct Regex {
  enum Kind { kChars, kSequence, kAlternatives, kRepeat } kind = kSequence;
  CodeRanges chars;          // kChars: one character of these
  std::vector<Regex> items;  // kSequence, kAlternatives; kRepeat: the one repeated
  int min = 0, max = -1;     // kRepeat: counts (−1: unbounded)
};

struct Pattern {
  Regex body;
  bool anchored_start = false, anchored_end = false;
};

// Throws std::invalid_argument naming what is not supported, with its position.
Pattern parse_pattern(std::string_view pattern);

}  // namespace ember::grammar
