#include "model/grammar/gbnf.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "model/grammar/char_ranges.h"
#include "model/text/utf8.h"

namespace ember::grammar {
namespace {

constexpr int kMaxRules = 20000;  // rules after repetitions are written out
constexpr int kMaxRepeat = 1000;  // the largest count in {m,n}
constexpr int kMaxNesting = 256;  // parentheses inside each other (the parser recurses)

using Ranges = CodeRanges;

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Grammar parse() {
    skip(true);
    while (pos_ < s_.size()) {
      const std::string name = read_name();
      skip(false);
      if (s_.substr(pos_, 3) != "::=") fail("expected '::=' after rule name '" + name + "'");
      pos_ += 3;
      skip(true);
      const int r = rule_id(name);
      if (defined_.count(r)) fail("rule '" + name + "' is defined twice");
      defined_.insert(r);
      current_ = name;
      alternatives(r, false);
      if (pos_ < s_.size() && s_[pos_] != '\n' && s_[pos_] != '\r')
        fail(std::string("unexpected '") + s_[pos_] + "'");
      skip(true);
    }
    for (const auto& [name, id] : ids_)
      if (!defined_.count(id)) throw GbnfError("GBNF: rule '" + name + "' is used but not defined");
    auto root = ids_.find("root");
    if (root == ids_.end()) throw GbnfError("GBNF: the grammar has no 'root' rule");
    g_.set_root(root->second);
    refuse_left_recursion();
    return std::move(g_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw GbnfError("GBNF line " + std::to_string(line) + ", column " + std::to_string(col) + ": " +
                    what);
  }

  // Blanks and comments; newlines only when `newlines`.
  void skip(bool newlines) {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '#') {
        while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || ((c == '\n' || c == '\r') && newlines)) {
        ++pos_;
      } else {
        break;
      }
    }
  }

  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  }

  std::string read_name() {
    const size_t start = pos_;
    while (pos_ < s_.size() && name_char(s_[pos_])) ++pos_;
    if (pos_ == start) fail("expected a rule name");
    return std::string(s_.substr(start, pos_ - start));
  }

  int new_rule(const std::string& name) {
    if (static_cast<int>(g_.size()) >= kMaxRules)
      fail("the grammar needs more than " + std::to_string(kMaxRules) + " rules");
    return g_.add_rule(name);
  }

  int rule_id(const std::string& name) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    return ids_[name] = new_rule(name);
  }

  // alternative ('|' alternative)*, into rule r.
  void alternatives(int r, bool nested) {
    g_.add_alternative(r, sequence(nested));
    while (pos_ < s_.size() && s_[pos_] == '|') {
      ++pos_;
      skip(true);
      g_.add_alternative(r, sequence(nested));
    }
  }

  uint32_t code_point() {  // one UTF-8 character of the text
    const std::optional<uint32_t> cp = decode_utf8(s_, pos_);
    if (!cp) fail("invalid UTF-8");
    return *cp;
  }

  uint32_t hex(size_t digits) {
    try {
      return read_hex_escape(s_, pos_, digits);
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }

  // A character of a literal or class, escapes decoded.
  uint32_t character() {
    if (pos_ >= s_.size()) fail("unfinished literal or class");
    if (s_[pos_] != '\\') return code_point();
    ++pos_;
    if (pos_ >= s_.size()) fail("unfinished escape");
    const char c = s_[pos_++];
    switch (c) {
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case '\\':
      case '"':
      case '[':
      case ']':
      case '-':
      case '^':
        return static_cast<uint8_t>(c);
      case 'x':
        return hex(2);
      case 'u':
        return hex(4);
      case 'U':
        return hex(8);
      default:
        --pos_;
        fail(std::string("unknown escape '\\") + c + "'");
    }
  }

  // The element matching one character from `ranges`: a byte set when all are ASCII, else a
  // rule of UTF-8 sequences.
  Element char_class(const Ranges& ranges) {
    ByteSet ascii;
    std::vector<Sequence> wide;
    for (const auto& [lo, hi] : normalise(ranges)) {
      if (lo < 0x80)
        ascii.add_range(static_cast<uint8_t>(lo), static_cast<uint8_t>(std::min(hi, 0x7Fu)));
      if (hi >= 0x80) utf8_sequences(std::max(lo, 0x80u), hi, wide);
    }
    if (wide.empty()) return Grammar::bytes(ascii);
    const int r = new_rule(current_ + "/class");
    if (ascii.bits != ByteSet().bits) g_.add_alternative(r, {Grammar::bytes(ascii)});
    for (Sequence& s : wide) g_.add_alternative(r, std::move(s));
    return Grammar::ref(r);
  }

  // One element with its repetition, appended to `seq`.
  void element(Sequence& seq, bool nested) {
    Sequence item;  // what the repetition applies to
    const char c = s_[pos_];
    if (c == '"') {
      ++pos_;
      while (true) {
        if (pos_ >= s_.size()) fail("unfinished literal");
        if (s_[pos_] == '"') break;
        const Sequence bytes = Grammar::literal(text::utf8::encode(character()));
        item.insert(item.end(), bytes.begin(), bytes.end());
      }
      ++pos_;
      if (item.empty()) {  // "" matches nothing: a rule with one empty alternative
        const int r = new_rule(current_ + "/empty");
        g_.add_alternative(r, {});
        item.push_back(Grammar::ref(r));
      }
    } else if (c == '[') {
      ++pos_;
      const bool negated = pos_ < s_.size() && s_[pos_] == '^';
      if (negated) ++pos_;
      Ranges ranges;
      while (true) {
        if (pos_ >= s_.size()) fail("unfinished character class");
        if (s_[pos_] == ']') break;
        const uint32_t lo = character();
        uint32_t hi = lo;
        if (pos_ + 1 < s_.size() && s_[pos_] == '-' && s_[pos_ + 1] != ']') {
          ++pos_;
          hi = character();
          if (hi < lo) fail("a class range runs backwards");
        }
        ranges.emplace_back(lo, hi);
      }
      ++pos_;
      item.push_back(char_class(negated ? complement(ranges) : ranges));
    } else if (c == '.') {
      ++pos_;
      item.push_back(char_class({{0, kMaxCodePoint}}));
    } else if (c == '(') {
      if (++nesting_ > kMaxNesting) fail("groups nest deeper than " + std::to_string(kMaxNesting));
      ++pos_;
      skip(true);
      const int r = new_rule(current_ + "/group");
      alternatives(r, true);
      if (pos_ >= s_.size() || s_[pos_] != ')') fail("expected ')'");
      ++pos_;
      --nesting_;
      item.push_back(Grammar::ref(r));
    } else if (c == '<') {
      fail("token references (<…>) are not supported");
    } else if (name_char(c)) {
      item.push_back(Grammar::ref(rule_id(read_name())));
    } else {
      fail(std::string("unexpected '") + c + "'");
    }
    skip(nested);
    int min = 1, max = 1;  // max −1: unbounded
    if (pos_ < s_.size()) {
      const char r = s_[pos_];
      if (r == '*' || r == '+' || r == '?') {
        ++pos_;
        min = r == '+' ? 1 : 0;
        max = r == '?' ? 1 : -1;
      } else if (r == '{') {
        ++pos_;
        skip(false);
        min = number();
        max = min;
        skip(false);
        if (pos_ < s_.size() && s_[pos_] == ',') {
          ++pos_;
          skip(false);
          max = pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9' ? number() : -1;
          skip(false);
        }
        if (pos_ >= s_.size() || s_[pos_] != '}') fail("expected '}'");
        ++pos_;
        if (max >= 0 && max < min) fail("a repetition's maximum is below its minimum");
      }
      skip(nested);
    }
    if (min == 1 && max == 1) {
      seq.insert(seq.end(), item.begin(), item.end());
      return;
    }
    // The item as one rule, then min copies and the optional rest.
    int one;
    if (item.size() == 1 && item[0].rule >= 0) {
      one = item[0].rule;
    } else {
      one = new_rule(current_ + "/item");
      g_.add_alternative(one, item);
    }
    for (int i = 0; i < min; ++i) seq.push_back(Grammar::ref(one));
    if (max < 0) {  // many ::= one many | ε
      const int many = new_rule(current_ + "/star");
      g_.add_alternative(many, {Grammar::ref(one), Grammar::ref(many)});
      g_.add_alternative(many, {});
      seq.push_back(Grammar::ref(many));
    } else if (max > min) {  // opt(k) ::= one opt(k−1) | ε, nested
      int tail = -1;
      for (int k = 0; k < max - min; ++k) {
        const int opt = new_rule(current_ + "/optional");
        g_.add_alternative(opt, tail < 0 ? Sequence{Grammar::ref(one)}
                                         : Sequence{Grammar::ref(one), Grammar::ref(tail)});
        g_.add_alternative(opt, {});
        tail = opt;
      }
      seq.push_back(Grammar::ref(tail));
    }
  }

  int number() {
    const size_t start = pos_;
    int v = 0;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      v = v * 10 + (s_[pos_++] - '0');
      if (v > kMaxRepeat)
        fail("repetition counts above " + std::to_string(kMaxRepeat) + " are not supported");
    }
    if (pos_ == start) fail("expected a number");
    return v;
  }

  Sequence sequence(bool nested) {
    Sequence seq;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '|' || c == ')' || c == '\n' || c == '\r') break;
      element(seq, nested);
    }
    return seq;
  }

  // A rule that can reach itself without consuming a byte would make the recognizer expand
  // for ever: refused, naming it.
  void refuse_left_recursion() const {
    const int n = static_cast<int>(g_.size());
    std::vector<char> nullable(n, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (int r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const Sequence& alt : g_.alternatives(r))
          if (std::all_of(alt.begin(), alt.end(),
                          [&](const Element& e) { return e.rule >= 0 && nullable[e.rule]; })) {
            nullable[r] = changed = true;
            break;
          }
      }
    }
    std::vector<std::vector<int>> first(n);  // rules that can start rule r
    for (int r = 0; r < n; ++r)
      for (const Sequence& alt : g_.alternatives(r))
        for (const Element& e : alt) {
          if (e.rule < 0) break;
          first[r].push_back(e.rule);
          if (!nullable[e.rule]) break;
        }
    // Depth-first over those edges, without recursion (a grammar may have thousands of rules):
    // a back edge is left recursion.
    std::vector<char> state(n, 0);  // 0 new, 1 on the path, 2 done
    for (int start = 0; start < n; ++start) {
      if (state[start]) continue;
      std::vector<std::pair<int, size_t>> path{{start, 0}};
      state[start] = 1;
      while (!path.empty()) {
        auto& [r, next] = path.back();
        if (next < first[r].size()) {
          const int e = first[r][next++];
          if (state[e] == 1)
            throw GbnfError("GBNF: rule '" + g_.name(e) +
                            "' is left-recursive (it can start with itself); write the "
                            "repetition with * or + instead");
          if (state[e] == 0) {
            state[e] = 1;
            path.emplace_back(e, 0);
          }
          continue;
        }
        state[r] = 2;
        path.pop_back();
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  int nesting_ = 0;      // open parentheses (the parser recurses into each)
  std::string current_;  // the rule being defined (names the rules made for its parts)
  Grammar g_;
  std::map<std::string, int> ids_;
  std::set<int> defined_;
};

}  // namespace

Grammar grammar_from_gbnf(std::string_view text) {
  return Parser(text).parse();
}

}  // namespace ember::grammar
