#include "model/grammar/regex.h"

#include <stdexcept>
#include <string>

namespace ember::grammar {
namespace {

constexpr int kMaxCount = 1000;

const CodeRanges kDigit = {{'0', '9'}};
const CodeRanges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
// ECMA-262 white space and line terminators.
const CodeRanges kSpace = {{0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680},
                           {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                           {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
// `.`: anything but a line terminator.
const CodeRanges kLineTerminators = {{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  Pattern parse() {
    Pattern p;
    if (!s_.empty() && s_[0] == '^') {
      p.anchored_start = true;
      ++pos_;
    }
    size_t end = s_.size();
    // A final unescaped $ (an even number of backslashes before it).
    if (end > pos_ && s_[end - 1] == '$') {
      size_t backslashes = 0;
      while (end - 1 - backslashes > pos_ && s_[end - 2 - backslashes] == '\\') ++backslashes;
      if (backslashes % 2 == 0) {
        p.anchored_end = true;
        --end;
      }
    }
    s_ = s_.substr(0, end);
    p.body = alternatives();
    if (pos_ < s_.size()) fail(std::string("unexpected '") + s_[pos_] + "'");
    return p;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument(what + " at offset " + std::to_string(pos_));
  }

  bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }

  Regex alternatives() {
    Regex alt{Regex::kAlternatives, {}, {sequence()}};
    while (at('|')) {
      ++pos_;
      alt.items.push_back(sequence());
    }
    return alt.items.size() == 1 ? std::move(alt.items[0]) : alt;
  }

  Regex sequence() {
    Regex seq{Regex::kSequence, {}, {}};
    while (pos_ < s_.size() && !at('|') && !at(')')) seq.items.push_back(quantified());
    if (seq.items.size() == 1) return std::move(seq.items[0]);  // (x*)* is then seen as x**
    return seq;
  }

  int number() {
    const size_t start = pos_;
    long v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      v = v * 10 + (s_[pos_++] - '0');
      if (v > kMaxCount) fail("a count above " + std::to_string(kMaxCount));
    }
    if (pos_ == start) fail("expected a number");
    return static_cast<int>(v);
  }

  Regex quantified() {
    Regex atom_ = atom();
    while (pos_ < s_.size()) {
      int min, max;
      const char c = s_[pos_];
      if (c == '*' || c == '+' || c == '?') {
        ++pos_;
        min = c == '+' ? 1 : 0;
        max = c == '?' ? 1 : -1;
      } else if (c == '{' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9') {
        ++pos_;
        min = max = number();
        if (at(',')) {
          ++pos_;
          max = at('}') ? -1 : number();
        }
        if (!at('}')) fail("expected '}'");
        ++pos_;
        if (max >= 0 && max < min) fail("a count range that runs backwards");
      } else {
        break;
      }
      if (at('?')) ++pos_;  // lazy: the same strings
      // A repetition of a star, plus or option that is itself a star or plus is one star or
      // plus ((x*)* = x*, (x+)* = x*, (x?)+ = x*): written out nested, the recognizer would
      // find exponentially many ways to read the same text.
      if (atom_.kind == Regex::kRepeat && min <= 1 && (max < 0 || max == 1) && atom_.min <= 1 &&
          (atom_.max < 0 || atom_.max == 1) && (max < 0 || atom_.max < 0)) {
        atom_.min = atom_.min * min;
        atom_.max = -1;
        continue;
      }
      atom_ = Regex{Regex::kRepeat, {}, {std::move(atom_)}, min, max};
    }
    return atom_;
  }

  uint32_t hex(size_t digits) {
    try {
      return read_hex_escape(s_, pos_, digits);
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }

  uint32_t code_point() {  // one UTF-8 character of the text
    const std::optional<uint32_t> cp = decode_utf8(s_, pos_);
    if (!cp) fail("invalid UTF-8");
    return *cp;
  }

  // After a backslash: a class escape (\d …) into `ranges`, or one character.
  CodeRanges escape() {
    if (pos_ >= s_.size()) fail("a pattern ending in '\\'");
    const char c = s_[pos_++];
    auto one = [](uint32_t cp) { return CodeRanges{{cp, cp}}; };
    switch (c) {
      case 'd':
        return kDigit;
      case 'D':
        return complement(kDigit);
      case 'w':
        return kWord;
      case 'W':
        return complement(kWord);
      case 's':
        return kSpace;
      case 'S':
        return complement(kSpace);
      case 't':
        return one('\t');
      case 'n':
        return one('\n');
      case 'r':
        return one('\r');
      case 'f':
        return one('\f');
      case 'v':
        return one('\v');
      case '0':
        return one(0);
      case 'x':
        return one(hex(2));
      case 'u':
        return one(hex(4));
      case 'b':
      case 'B':
        --pos_;
        fail("word boundaries (\\b, \\B) are not supported");
      default:
        if (c >= '1' && c <= '9') {
          --pos_;
          fail("back-references are not supported");
        }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
          --pos_;
          fail(std::string("the escape \\") + c + " is not supported");
        }
        return one(static_cast<uint8_t>(c));  // escaped punctuation stands for itself
    }
  }

  CodeRanges char_class() {
    const bool negated = at('^');
    if (negated) ++pos_;
    CodeRanges ranges;
    bool first = true;
    while (true) {
      if (pos_ >= s_.size()) fail("an unfinished class");
      if (at(']') && !first) break;
      first = false;
      CodeRanges lo;
      if (at('\\')) {
        ++pos_;
        lo = escape();
      } else {
        const uint32_t cp = code_point();
        lo = {{cp, cp}};
      }
      if (lo.size() == 1 && lo[0].first == lo[0].second && at('-') && pos_ + 1 < s_.size() &&
          s_[pos_ + 1] != ']') {
        ++pos_;
        uint32_t hi;
        if (at('\\')) {
          ++pos_;
          const CodeRanges h = escape();
          if (h.size() != 1 || h[0].first != h[0].second) fail("a class range ending in a class");
          hi = h[0].first;
        } else {
          hi = code_point();
        }
        if (hi < lo[0].first) fail("a class range that runs backwards");
        ranges.emplace_back(lo[0].first, hi);
      } else {
        ranges.insert(ranges.end(), lo.begin(), lo.end());
      }
    }
    ++pos_;
    return negated ? complement(ranges) : normalise(ranges);
  }

  Regex atom() {
    const char c = s_[pos_];
    auto chars = [](CodeRanges r) { return Regex{Regex::kChars, std::move(r), {}}; };
    switch (c) {
      case '(': {
        if (++nesting_ > 256) fail("groups nested deeper than 256");
        ++pos_;
        if (at('?')) {
          if (s_.substr(pos_, 2) == "?:") {
            pos_ += 2;
          } else if (s_.substr(pos_, 2) == "?<" && s_.substr(pos_, 3) != "?<=" &&
                     s_.substr(pos_, 3) != "?<!") {
            const size_t close = s_.find('>', pos_);
            if (close == std::string_view::npos) fail("an unfinished group name");
            pos_ = close + 1;
          } else {
            fail("look-around and group flags are not supported");
          }
        }
        Regex inner = alternatives();
        if (!at(')')) fail("expected ')'");
        ++pos_;
        --nesting_;
        return inner;
      }
      case '[':
        ++pos_;
        return chars(char_class());
      case '.':
        ++pos_;
        return chars(complement(kLineTerminators));
      case '\\':
        ++pos_;
        return chars(escape());
      case '^':
      case '$':
        fail("anchors are supported only at the very start and end");
      case '*':
      case '+':
      case '?':
        fail(std::string("nothing to repeat before '") + c + "'");
      default: {
        const uint32_t cp = code_point();
        return chars({{cp, cp}});
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  int nesting_ = 0;  // open groups (the parser recurses into each)
};

}  // namespace

Pattern parse_pattern(std::string_view pattern) {
  return Parser(pattern).parse();
}

}  // namespace ember::grammar
