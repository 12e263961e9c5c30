// GBNF → Grammar (grammar.h): llama.cpp's grammar notation, which llama-server takes in its
// `grammar` field (format: llama.cpp's grammars/README.md). Rules `name ::= alternatives`, the
// one called `root` first; literals "…" with \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH escapes;
// character classes [a-z0-9_] and [^…] (any Unicode code points: they are matched as UTF-8);
// `.` for any character; grouping ( … ); | between alternatives; repetition * + ? {m} {m,}
// {m,n}; # comments. A newline ends a rule except after ::= or |, or inside parentheses. Token
// references (<[…]>, <|name|>) are not supported. Left-recursive rules are refused: the
// recognizer would never finish expanding them.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "model/grammar/grammar.h"

namespace ember::grammar {

// A grammar that does not parse or cannot be used; the message says where (line and column).
class GbnfError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws GbnfError.
Grammar grammar_from_gbnf(std::string_view text);

}  // namespace ember::grammar
