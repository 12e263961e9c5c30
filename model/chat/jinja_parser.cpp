// Lexer and recursive-descent parser for Jinja templates (see jinja_ast.h), following jinja2's
// lexer and parser with trim_blocks and lstrip_blocks on.
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <set>

#include "model/chat/jinja_ast.h"
#include "model/chat/jinja_builtins.h"
#include "model/chat/jinja_unicode.h"

namespace ember::chat::jinja {
namespace {

struct Token {
  enum class Kind {
    kText,
    kVarBegin,
    kVarEnd,
    kBlockBegin,
    kBlockEnd,
    kName,
    kString,
    kInt,
    kFloat,
    kOp,
    kEnd
  };
  Kind kind;
  std::string text;
  size_t line;
  Value value = Value();  // kInt, kFloat, kString: the literal
};

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// The length of the whitespace character at s[i] (Python's \s: Unicode whitespace), else 0.
size_t space_at(const std::string& s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return unicode::is_space(c) ? 1 : 0;
  size_t j = i;
  return unicode::is_space(unicode::decode(s, j)) ? j - i : 0;
}

// Python's str.rstrip(): trailing Unicode whitespace goes.
void rstrip(std::string& text) {
  size_t keep = 0;
  for (size_t i = 0; i < text.size();) {
    const size_t n = space_at(text, i);
    if (n) {
      i += n;
    } else {
      unicode::decode(text, i);
      keep = i;
    }
  }
  text.resize(keep);
}

// jinja2 reads templates with universal newlines (\r\n and \r become \n) and, without
// keep_trailing_newline, drops one newline at the very end.
std::string normalize_newlines(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(normalize_newlines(src)) {}

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      std::string text = src_.substr(pos, tag - pos);
      if (tag == src_.size()) {
        emit_text(text, pos);
        break;
      }
      const char kind = src_[tag + 1];
      const char modifier = tag + 2 < src_.size() ? src_[tag + 2] : 0;
      strip_before(text, pos, kind, modifier);
      emit_text(text, pos);
      size_t inner = tag + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
      if (kind == '#') {
        size_t close = src_.find("#}", inner);
        if (close == std::string::npos) throw Error(where(tag) + "unclosed comment");
        const char end_modifier = close > inner ? src_[close - 1] : 0;
        pos = after_tag(close + 2, end_modifier, true);
        continue;
      }
      if (kind == '%' && raw_block(tag, inner, pos)) continue;
      tokens_.push_back(
          {kind == '{' ? Token::Kind::kVarBegin : Token::Kind::kBlockBegin, "", line_of(tag)});
      pos = lex_inside(inner, kind);
    }
    tokens_.push_back({Token::Kind::kEnd, "", line_of(src_.size())});
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1))
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    return src_.size();
  }
  // Lines are counted incrementally: the lexer asks for positions that mostly grow.
  size_t line_of(size_t pos) const {
    if (pos < line_pos_) line_pos_ = 0, line_ = 1;
    for (; line_pos_ < pos && line_pos_ < src_.size(); ++line_pos_)
      line_ += src_[line_pos_] == '\n';
    return line_;
  }
  std::string where(size_t pos) const {
    return "template line " + std::to_string(line_of(pos)) + ": ";
  }

  void emit_text(const std::string& text, size_t pos) {
    if (!text.empty()) tokens_.push_back({Token::Kind::kText, text, line_of(pos)});
  }

  // The text before a tag: `-` strips its trailing whitespace; lstrip_blocks drops the blanks
  // between the start of the line and a block or comment tag (not for `+` or {{ }}).
  void strip_before(std::string& text, size_t text_pos, char kind, char modifier) const {
    if (modifier == '-') {
      rstrip(text);
    } else if (kind != '{' && modifier != '+') {
      size_t blank = text.size();
      while (blank > 0 && is_blank(text[blank - 1])) --blank;
      size_t absolute = text_pos + blank;  // where the blank run starts in the source
      if (absolute == 0 || src_[absolute - 1] == '\n') text.resize(blank);
    }
  }

  // After a closing tag: `-` strips the whitespace that follows; trim_blocks drops one newline
  // after block and comment tags (not after `+`).
  size_t after_tag(size_t pos, char modifier, bool block) const {
    if (modifier == '-') {
      while (pos < src_.size())
        if (size_t n = space_at(src_, pos))
          pos += n;
        else
          break;
    } else if (block && modifier != '+' && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  // Matches `{%[-+] name [-+]%}` at `tag`: sets the end (after %}) and the modifiers.
  bool match_keyword_tag(size_t tag, const char* name, size_t& end, char& open, char& close) const {
    size_t i = tag + 2;
    open = i < src_.size() && (src_[i] == '-' || src_[i] == '+') ? src_[i++] : 0;
    while (i < src_.size() && space_at(src_, i)) i += space_at(src_, i);
    const std::string keyword(name);
    if (src_.compare(i, keyword.size(), keyword) != 0) return false;
    i += keyword.size();
    while (i < src_.size() && space_at(src_, i)) i += space_at(src_, i);
    close = 0;
    if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) close = src_[i++];
    if (src_.compare(i, 2, "%}") != 0) return false;
    end = i + 2;
    return true;
  }

  // {% raw %}...{% endraw %}: the text between goes out as it is. The raw tag itself keeps the
  // newline after it (jinja2 applies trim_blocks only to endraw).
  bool raw_block(size_t tag, size_t inner, size_t& pos) {
    (void)inner;
    size_t begin_end;
    char open, close;
    if (!match_keyword_tag(tag, "raw", begin_end, open, close)) return false;
    size_t content = close == '-' ? after_tag(begin_end, '-', false) : begin_end;
    for (size_t at = src_.find("{%", content); at != std::string::npos;
         at = src_.find("{%", at + 1)) {
      size_t end_end;
      char end_open, end_close;
      if (!match_keyword_tag(at, "endraw", end_end, end_open, end_close)) continue;
      std::string text = src_.substr(content, at - content);
      strip_before(text, content, '%', end_open);
      emit_text(text, content);
      pos = after_tag(end_end, end_close, true);
      return true;
    }
    throw Error(where(tag) + "missing end of raw directive");
  }

  // A string literal as jinja2 decodes it: Python's unicode-escape codec (\n, \t, \xhh,
  // \uXXXX, \UXXXXXXXX, octal \ooo, ...; unknown escapes stay as they are).
  std::string lex_string(size_t& i, char quote, size_t start) {
    std::string value;
    auto hex = [&](size_t digits, const char* what) {
      uint32_t v = 0;
      for (size_t k = 0; k < digits; ++k) {
        if (i + 1 + k >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[i + 1 + k])))
          throw Error(where(start) + "truncated \\" + what + " escape");
        const char c = src_[i + 1 + k];
        v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(c))
                                               ? c - '0'
                                               : (c | 0x20) - 'a' + 10);
      }
      i += digits;
      // Python keeps a lone surrogate in the string but cannot write it out as UTF-8.
      if (v > 0x10ffff || (v >= 0xd800 && v < 0xe000))
        throw Error(where(start) + "a \\" + what + " escape that is not a character");
      unicode::append(value, v);
    };
    for (++i; i < src_.size() && src_[i] != quote; ++i) {
      if (src_[i] != '\\' || i + 1 >= src_.size()) {
        value += src_[i];
        continue;
      }
      const char e = src_[++i];
      switch (e) {
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case 'a':
          value += '\a';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'v':
          value += '\v';
          break;
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case '\n':
          break;  // a line continuation
        case 'x':
          hex(2, "xXX");
          break;
        case 'u':
          hex(4, "uXXXX");
          break;
        case 'U':
          hex(8, "UXXXXXXXX");
          break;
        case 'N':
          throw Error(where(start) + "\\N{...} escapes are not supported");
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0;
                 k < 2 && i + 1 < src_.size() && src_[i + 1] >= '0' && src_[i + 1] <= '7'; ++k)
              v = v * 8 + static_cast<uint32_t>(src_[++i] - '0');
            unicode::append(value, v);
          } else if (static_cast<unsigned char>(e) >= 0x80) {
            // jinja2 first writes non-ASCII as backslash escapes, so "\é" reads as the
            // escaped backslash followed by "xe9".
            size_t j = i;
            const char32_t c = unicode::decode(src_, j);
            char buf[16];
            std::snprintf(buf, sizeof buf,
                          c <= 0xff     ? "\\x%02x"
                          : c <= 0xffff ? "\\u%04x"
                                        : "\\U%08x",
                          static_cast<unsigned>(c));
            value += buf;
            i = j - 1;
          } else {
            value += '\\';
            value += e;
          }
      }
    }
    if (i >= src_.size()) throw Error(where(start) + "unterminated string");
    ++i;
    return value;
  }

  // An integer (decimal, or 0b / 0o / 0x) or float literal, underscores between digits.
  void lex_number(size_t& pos, size_t line) {
    auto digits = [&](size_t from, auto is_digit) {
      size_t end = from;
      while (end < src_.size() &&
             (is_digit(src_[end]) ||
              (src_[end] == '_' && end + 1 < src_.size() && end > from && is_digit(src_[end + 1]))))
        ++end;
      return end;
    };
    auto decimal = [](char c) { return c >= '0' && c <= '9'; };
    std::string clean;
    const char prefix =
        pos + 1 < src_.size() && src_[pos] == '0' ? static_cast<char>(src_[pos + 1] | 0x20) : 0;
    if (prefix == 'x' || prefix == 'o' || prefix == 'b') {
      const int base = prefix == 'x' ? 16 : prefix == 'o' ? 8 : 2;
      auto in_base = [base](char c) {
        return base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                          : c >= '0' && c < '0' + base;
      };
      size_t from = pos + 2 + (pos + 2 < src_.size() && src_[pos + 2] == '_');
      size_t end = digits(from, in_base);
      int64_t v;
      if (end == from || !py::parse_int(src_.substr(pos, end - pos), base, v))
        throw Error(where(pos) + "invalid integer literal");
      tokens_.push_back({Token::Kind::kInt, src_.substr(pos, end - pos), line, Value(v)});
      pos = end;
      return;
    }
    size_t end = digits(pos, decimal);
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' && decimal(src_[end + 1])) {
      is_float = true;
      end = digits(end + 1, decimal);
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t e = end + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && decimal(src_[e])) {
        is_float = true;
        end = digits(e, decimal);
      }
    }
    for (size_t i = pos; i < end; ++i)
      if (src_[i] != '_') clean += src_[i];
    Value v;
    if (is_float) {
      v = Value(std::strtod(clean.c_str(), nullptr));
    } else {
      errno = 0;
      const long long n = std::strtoll(clean.c_str(), nullptr, 10);
      if (errno == ERANGE) throw Error(where(pos) + "integer literal too large");
      v = Value(static_cast<int64_t>(n));
    }
    tokens_.push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, clean, line, v});
    pos = end;
  }

  size_t lex_inside(size_t pos, char kind) {
    const char close = kind == '{' ? '}' : '%';
    int depth = 0;  // open ( [ { inside the tag: a } there is not the end
    while (pos < src_.size()) {
      char c = src_[pos];
      if (size_t n = space_at(src_, pos)) {
        pos += n;
        continue;
      }
      for (char modifier : {'-', '+', '\0'}) {
        const size_t at = pos + (modifier ? 1 : 0);
        if (depth != 0 || (modifier && c != modifier) || at + 1 >= src_.size() ||
            src_[at] != close || src_[at + 1] != '}')
          continue;
        if (modifier == '+' && kind == '{') continue;  // only block tags take +
        tokens_.push_back(
            {kind == '{' ? Token::Kind::kVarEnd : Token::Kind::kBlockEnd, "", line_of(pos)});
        return after_tag(at + 2, modifier, kind == '%');
      }
      size_t line = line_of(pos);
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t end = pos;
        while (end < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_'))
          ++end;
        tokens_.push_back({Token::Kind::kName, src_.substr(pos, end - pos), line});
        pos = end;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number(pos, line);
      } else if (c == '\'' || c == '"') {
        const size_t start = pos;
        std::string value = lex_string(pos, c, start);
        tokens_.push_back({Token::Kind::kString, value, line, Value(value)});
      } else {
        static const char* kTwo[] = {"==", "!=", "<=", ">=", "//", "**"};
        std::string op(1, c);
        for (const char* two : kTwo)
          if (src_.compare(pos, 2, two) == 0) op = two;
        if (op.size() == 1 && std::string("+-*/%~<>=()[]{},.:|").find(c) == std::string::npos)
          throw Error(where(pos) + "unexpected character '" + std::string(1, c) + "'");
        if (c == '(' || c == '[' || c == '{') ++depth;
        if (c == ')' || c == ']' || c == '}') --depth;
        tokens_.push_back({Token::Kind::kOp, op, line});
        pos += op.size();
      }
    }
    throw Error(where(pos) + "unclosed tag");
  }

  const std::string src_;
  std::vector<Token> tokens_;
  mutable size_t line_pos_ = 0, line_ = 1;
};

// Deeper nesting than this (parentheses, unary operators, blocks) is refused rather than risking
// the stack on a hostile template.
constexpr int kMaxNesting = 200;

// Whether an expression or statement tree reads the variable `name` (jinja2 gives macros that
// read varargs, kwargs or caller those arguments).
bool reads(const Expr* e, const std::string& name);
bool reads(const Body& body, const std::string& name);

bool reads(const Expr* e, const std::string& name) {
  if (!e) return false;
  if (e->kind == Expr::Kind::kName && e->name == name) return true;
  if (reads(e->target.get(), name)) return true;
  for (const ExprPtr& a : e->args)
    if (reads(a.get(), name)) return true;
  for (const auto& [_, a] : e->kwargs)
    if (reads(a.get(), name)) return true;
  for (const ExprPtr& k : e->keys)
    if (reads(k.get(), name)) return true;
  return false;
}

bool reads(const Body& body, const std::string& name) {
  for (const StmtPtr& s : body) {
    if (reads(s->expr.get(), name) || reads(s->condition.get(), name) || reads(s->body, name) ||
        reads(s->else_body, name))
      return true;
    for (const auto& [cond, branch] : s->branches)
      if (reads(cond.get(), name) || reads(branch, name)) return true;
    for (const ExprPtr& v : s->values)
      if (reads(v.get(), name)) return true;
    for (const auto& [_, fallback] : s->params)
      if (reads(fallback.get(), name)) return true;
  }
  return false;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Body parse_all() {
    Body body = parse_body({});
    if (peek().kind != Token::Kind::kEnd) fail("unexpected tag");
    return body;
  }

 private:
  const Token& peek(size_t ahead = 0) const { return t_[std::min(i_ + ahead, t_.size() - 1)]; }
  const Token& next() { return t_[std::min(i_++, t_.size() - 1)]; }
  [[noreturn]] void fail(const std::string& message) const {
    const Token& tok = peek();
    throw Error("template line " + std::to_string(tok.line) + ": " + message +
                (tok.text.empty() ? "" : " near '" + tok.text + "'"));
  }
  bool is_op(const std::string& op, size_t ahead = 0) const {
    return peek(ahead).kind == Token::Kind::kOp && peek(ahead).text == op;
  }
  bool is_name(const std::string& name, size_t ahead = 0) const {
    return peek(ahead).kind == Token::Kind::kName && peek(ahead).text == name;
  }
  void expect_op(const std::string& op) {
    if (!is_op(op)) fail("expected '" + op + "'");
    ++i_;
  }
  void expect_name(const std::string& name) {
    if (!is_name(name)) fail("expected '" + name + "'");
    ++i_;
  }
  std::string take_name() {
    if (peek().kind != Token::Kind::kName) fail("expected a name");
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != Token::Kind::kBlockEnd) fail("expected '%}'");
    ++i_;
  }

  // jinja2 rejects an unknown filter or test when it compiles the template, except inside an
  // if statement or conditional expression (a "soft" frame), where it fails only when used.
  void check_known(bool filter, const std::string& name) {
    if (soft_) return;
    if (filter ? has_filter(name) : has_test(name)) return;
    --i_;
    fail(std::string("no ") + (filter ? "filter" : "test") + " named '" + name + "'");
  }
  // Sets the soft-frame flag for as long as it lives.
  struct Soft {
    Soft(Parser& p, bool soft) : p_(p), saved_(p.soft_) { p.soft_ = soft; }
    ~Soft() { p_.soft_ = saved_; }
    Parser& p_;
    bool saved_;
  };

  // Statements until a block tag whose keyword is in `stops` (left unconsumed).
  Body parse_body(const std::set<std::string>& stops) {
    Body body;
    for (;;) {
      const Token& tok = peek();
      if (tok.kind == Token::Kind::kEnd) {
        if (!stops.empty()) fail("missing {% " + *stops.begin() + " %}");
        return body;
      }
      if (tok.kind == Token::Kind::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (tok.kind == Token::Kind::kVarBegin) {
        ++i_;
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = tok.line;
        s->expr = parse_expression();
        if (peek().kind != Token::Kind::kVarEnd) fail("expected '}}'");
        ++i_;
        body.push_back(std::move(s));
      } else if (tok.kind == Token::Kind::kBlockBegin) {
        if (peek(1).kind == Token::Kind::kName && stops.count(peek(1).text)) return body;
        ++i_;
        body.push_back(parse_statement());
      } else {
        fail("unexpected token");
      }
    }
  }

  // After {% keyword: returns at the keyword of the closing tag, consumed with its %}.
  void close(const std::string& keyword) {
    if (peek().kind != Token::Kind::kBlockBegin) fail("expected {% " + keyword + " %}");
    ++i_;
    expect_name(keyword);
    expect_block_end();
  }

  // `(name, name=default, ...)` of a macro or call block.
  void parse_params(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      std::string param = take_name();
      ExprPtr fallback;
      if (is_op("=")) {
        ++i_;
        fallback = parse_expression();
      }
      s.params.emplace_back(param, std::move(fallback));
      if (!is_op(")")) expect_op(",");
    }
    ++i_;
  }

  void note_catches(Stmt& s) {
    s.catch_varargs = reads(s.body, "varargs");
    s.catch_kwargs = reads(s.body, "kwargs");
    s.uses_caller = reads(s.body, "caller");
  }

  StmtPtr parse_statement() {
    Nest nest(*this);
    auto s = std::make_unique<Stmt>();
    s->line = peek().line;
    std::string keyword = take_name();
    if (keyword == "if") {
      Soft soft(*this, true);
      s->kind = Stmt::Kind::kIf;
      ExprPtr cond = parse_expression();
      expect_block_end();
      for (;;) {
        Body body = parse_body({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(cond), std::move(body));
        ++i_;  // {%
        std::string k = take_name();
        if (k == "elif") {
          cond = parse_expression();
          expect_block_end();
          continue;
        }
        if (k == "else") {
          expect_block_end();
          s->else_body = parse_body({"endif"});
          close("endif");
        } else {
          expect_block_end();
        }
        break;
      }
    } else if (keyword == "for") {
      s->kind = Stmt::Kind::kFor;
      bool paren = is_op("(");
      if (paren) ++i_;
      s->targets.push_back(take_name());
      while (is_op(",")) {
        ++i_;
        if (peek().kind != Token::Kind::kName) break;  // a trailing comma
        s->targets.push_back(take_name());
      }
      if (paren) expect_op(")");
      expect_name("in");
      s->expr = parse_or();  // not a conditional: `if` here filters the loop
      Soft soft(*this, false);
      if (is_name("if")) {
        ++i_;
        s->condition = parse_or();
      }
      if (is_name("recursive")) {
        ++i_;
        s->recursive = true;
      }
      expect_block_end();
      s->body = parse_body({"else", "endfor"});
      ++i_;
      if (take_name() == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"});
        close("endfor");
      } else {
        expect_block_end();
      }
    } else if (keyword == "set") {
      std::string first = take_name();
      if (is_op(".")) {
        ++i_;
        s->attribute_target = true;
        s->targets = {first, take_name()};
      } else {
        s->targets.push_back(first);
        while (is_op(",")) {
          ++i_;
          s->targets.push_back(take_name());
        }
      }
      if ((peek().kind == Token::Kind::kBlockEnd || is_op("|")) && !s->attribute_target &&
          s->targets.size() == 1) {
        Soft soft(*this, false);
        s->kind = Stmt::Kind::kSetBlock;
        s->name = first;
        if (is_op("|")) {
          ++i_;
          s->expr = parse_filter_chain();
        }
        expect_block_end();
        s->body = parse_body({"endset"});
        close("endset");
      } else {
        s->kind = Stmt::Kind::kSet;
        expect_op("=");
        s->expr = parse_tuple_or_expression();
        expect_block_end();
      }
    } else if (keyword == "macro") {
      Soft soft(*this, false);
      s->kind = Stmt::Kind::kMacro;
      s->name = take_name();
      parse_params(*s);
      expect_block_end();
      s->body = parse_body({"endmacro"});
      close("endmacro");
      note_catches(*s);
    } else if (keyword == "call") {
      s->kind = Stmt::Kind::kCallBlock;
      if (is_op("(")) parse_params(*s);
      s->expr = parse_expression();
      if (s->expr->kind != Expr::Kind::kCall) fail("expected a call in {% call %}");
      expect_block_end();
      Soft soft(*this, false);
      s->body = parse_body({"endcall"});
      close("endcall");
      note_catches(*s);
    } else if (keyword == "filter") {
      Soft soft(*this, false);
      s->kind = Stmt::Kind::kFilterBlock;
      s->expr = parse_filter_chain();
      expect_block_end();
      s->body = parse_body({"endfilter"});
      close("endfilter");
    } else if (keyword == "with") {
      s->kind = Stmt::Kind::kWith;
      while (peek().kind != Token::Kind::kBlockEnd) {
        if (!s->targets.empty()) expect_op(",");
        s->targets.push_back(take_name());
        expect_op("=");
        s->values.push_back(parse_expression());
      }
      expect_block_end();
      Soft soft(*this, false);
      s->body = parse_body({"endwith"});
      close("endwith");
    } else if (keyword == "print") {  // {% print a, b %} prints a, then b
      s->kind = Stmt::Kind::kOutput;
      s->values.push_back(parse_expression());
      while (is_op(",")) {
        ++i_;
        s->values.push_back(parse_expression());
      }
      expect_block_end();
    } else if (keyword == "break" || keyword == "continue") {
      s->kind = keyword == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      expect_block_end();
    } else if (keyword ==
               "generation") {  // transformers' marker for assistant text: renders its body
      s->kind = Stmt::Kind::kBlock;
      expect_block_end();
      s->body = parse_body({"endgeneration"});
      close("endgeneration");
    } else {
      --i_;
      fail("unsupported statement");
    }
    return s;
  }

  ExprPtr make(Expr::Kind kind) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = peek().line;
    return e;
  }

  // `f | g(x)` after {% filter or {% set x |: filters applied to the block's text.
  ExprPtr parse_filter_chain() {
    ExprPtr e = make(Expr::Kind::kBlockValue);
    for (;;) {
      ExprPtr f = make(Expr::Kind::kFilter);
      f->name = take_name();
      check_known(true, f->name);
      f->target = std::move(e);
      if (is_op("(")) parse_call_args(*f);
      e = std::move(f);
      if (!is_op("|")) return e;
      ++i_;
    }
  }

  // `a, b` without parentheses builds a tuple (in `set` values).
  ExprPtr parse_tuple_or_expression() {
    ExprPtr first = parse_expression();
    if (!is_op(",")) return first;
    ExprPtr tuple = make(Expr::Kind::kTuple);
    tuple->args.push_back(std::move(first));
    while (is_op(",")) {
      ++i_;
      if (peek().kind == Token::Kind::kBlockEnd) break;
      tuple->args.push_back(parse_expression());
    }
    return tuple;
  }

  ExprPtr parse_expression() {
    Nest nest(*this);
    const size_t start = i_;
    ExprPtr value;
    {
      // Filters in the value of a conditional expression are in a soft frame too; the value
      // is parsed before the `if` shows, so an unknown name is checked after the fact.
      Soft soft(*this, true);
      value = parse_or();
    }
    if (is_name("if")) {
      Soft soft(*this, true);
      ++i_;
      ExprPtr e = make(Expr::Kind::kConditional);
      ExprPtr cond = parse_or();
      ExprPtr otherwise;
      if (is_name("else")) {
        ++i_;
        otherwise = parse_expression();
      }
      e->args.push_back(std::move(value));
      e->args.push_back(std::move(cond));
      e->args.push_back(std::move(otherwise));
      return e;
    }
    if (!soft_) check_names(value.get(), start);
    return value;
  }

  // The unknown-filter check for an expression that turned out not to be conditional.
  void check_names(const Expr* e, size_t start) {
    if (!e) return;
    if ((e->kind == Expr::Kind::kFilter && !has_filter(e->name)) ||
        (e->kind == Expr::Kind::kTest && !has_test(e->name))) {
      i_ = start;
      fail(std::string("no ") + (e->kind == Expr::Kind::kFilter ? "filter" : "test") + " named '" +
           e->name + "'");
    }
    if (e->kind == Expr::Kind::kConditional) return;  // its own parts are soft
    check_names(e->target.get(), start);
    for (const ExprPtr& a : e->args) check_names(a.get(), start);
    for (const auto& [_, a] : e->kwargs) check_names(a.get(), start);
    for (const ExprPtr& k : e->keys) check_names(k.get(), start);
  }

  ExprPtr binary(const std::string& op, ExprPtr left, ExprPtr right) {
    ExprPtr e = make(Expr::Kind::kBinary);
    e->name = op;
    e->args.push_back(std::move(left));
    e->args.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      ++i_;
      left = binary("or", std::move(left), parse_and());
    }
    return left;
  }
  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      ++i_;
      left = binary("and", std::move(left), parse_not());
    }
    return left;
  }
  ExprPtr parse_not() {
    Nest nest(*this);
    if (is_name("not")) {
      ++i_;
      ExprPtr e = make(Expr::Kind::kUnary);
      e->name = "not";
      e->target = parse_not();
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    ExprPtr e;
    for (;;) {
      std::string op;
      if (peek().kind == Token::Kind::kOp &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == ">" ||
           peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        ++i_;
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        i_ += 2;
        op = "not in";
      } else {
        break;
      }
      if (!e) {
        e = make(Expr::Kind::kCompare);
        e->args.push_back(std::move(first));
      }
      e->ops.push_back(op);
      e->args.push_back(parse_math1());
    }
    return e ? std::move(e) : std::move(first);
  }
  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().text;
      left = binary(op, std::move(left), parse_concat());
    }
    return left;
  }
  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      ++i_;
      left = binary("~", std::move(left), parse_math2());
    }
    return left;
  }
  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().text;
      left = binary(op, std::move(left), parse_pow());
    }
    return left;
  }
  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      ++i_;
      left = binary("**", std::move(left), parse_unary(true));
    }
    return left;
  }
  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(Expr::Kind::kUnary);
      e->name = next().text;
      e->target = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filters_and_tests(std::move(e));
    return e;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().kind == Token::Kind::kName && is_op("=", 1)) {
        std::string key = next().text;
        ++i_;
        e.kwargs.emplace_back(key, parse_expression());
      } else {
        e.args.push_back(parse_expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    ++i_;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    for (;;) {
      if (is_op(".")) {
        ++i_;
        ExprPtr a = make(Expr::Kind::kAttr);
        if (peek().kind == Token::Kind::kInt) {  // a.0 is a[0]
          a->kind = Expr::Kind::kItem;
          a->args.push_back(parse_primary());
        } else {
          a->name = take_name();
        }
        a->target = std::move(e);
        e = std::move(a);
      } else if (is_op("[")) {
        ++i_;
        ExprPtr parts[3];
        int index = 0;
        bool slice = false;
        while (!is_op("]")) {
          if (is_op(":")) {
            ++i_;
            slice = true;
            if (++index > 2) fail("too many ':' in a slice");
            continue;
          }
          if (parts[index]) fail("expected ']'");
          parts[index] = parse_expression();
        }
        ++i_;
        ExprPtr s = make(slice ? Expr::Kind::kSlice : Expr::Kind::kItem);
        s->target = std::move(e);
        if (slice) {
          for (auto& p : parts) s->args.push_back(std::move(p));
        } else {
          if (!parts[0]) fail("empty subscript");
          s->args.push_back(std::move(parts[0]));
        }
        e = std::move(s);
      } else if (is_op("(")) {
        ExprPtr c = make(Expr::Kind::kCall);
        c->target = std::move(e);
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filters_and_tests(ExprPtr e) {
    for (;;) {
      if (is_op("|")) {
        ++i_;
        ExprPtr f = make(Expr::Kind::kFilter);
        f->name = take_name();
        check_known(true, f->name);
        f->target = std::move(e);
        if (is_op("(")) parse_call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        ++i_;
        ExprPtr t = make(Expr::Kind::kTest);
        if (is_name("not")) {
          ++i_;
          t->negated = true;
        }
        t->name = take_name();
        check_known(false, t->name);
        t->target = std::move(e);
        if (is_op("(")) {
          parse_call_args(*t);
        } else if (starts_argument()) {
          if (is_name("is")) fail("You cannot chain multiple tests with is");
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  // Whether the next token starts the single unparenthesised argument of a test (jinja2: a
  // name, literal, list or dict, but not `else`, `or` or `and`).
  bool starts_argument() const {
    const Token& tok = peek();
    if (tok.kind == Token::Kind::kString || tok.kind == Token::Kind::kInt ||
        tok.kind == Token::Kind::kFloat)
      return true;
    if (tok.kind == Token::Kind::kName)
      return tok.text != "else" && tok.text != "or" && tok.text != "and";
    return tok.kind == Token::Kind::kOp && (tok.text == "[" || tok.text == "{");
  }

  ExprPtr literal(Value v) {
    ExprPtr e = make(Expr::Kind::kLiteral);
    e->value = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Token& tok = peek();
    switch (tok.kind) {
      case Token::Kind::kString: {
        std::string s = next().text;
        while (peek().kind == Token::Kind::kString) s += next().text;  // adjacent literals join
        return literal(Value(s));
      }
      case Token::Kind::kInt:
      case Token::Kind::kFloat:
        return literal(next().value);
      case Token::Kind::kName: {
        std::string name = next().text;
        if (name == "true" || name == "True") return literal(Value(true));
        if (name == "false" || name == "False") return literal(Value(false));
        if (name == "none" || name == "None") return literal(Value::none());
        ExprPtr e = make(Expr::Kind::kName);
        e->name = name;
        return e;
      }
      case Token::Kind::kOp:
        if (tok.text == "(") {
          Nest nest(*this);
          ++i_;
          if (is_op(")")) {
            ++i_;
            return make(Expr::Kind::kTuple);
          }
          ExprPtr first = parse_expression();
          if (is_op(")")) {
            ++i_;
            return first;
          }
          ExprPtr tuple = make(Expr::Kind::kTuple);
          tuple->args.push_back(std::move(first));
          while (is_op(",")) {
            ++i_;
            if (is_op(")")) break;
            tuple->args.push_back(parse_expression());
          }
          expect_op(")");
          return tuple;
        }
        if (tok.text == "[") {
          Nest nest(*this);
          ++i_;
          ExprPtr list = make(Expr::Kind::kList);
          while (!is_op("]")) {
            list->args.push_back(parse_expression());
            if (!is_op("]")) expect_op(",");
          }
          ++i_;
          return list;
        }
        if (tok.text == "{") {
          Nest nest(*this);
          ++i_;
          ExprPtr dict = make(Expr::Kind::kDict);
          while (!is_op("}")) {
            dict->keys.push_back(parse_expression());
            expect_op(":");
            dict->args.push_back(parse_expression());
            if (!is_op("}")) expect_op(",");
          }
          ++i_;
          return dict;
        }
        break;
      default:
        break;
    }
    fail("expected an expression");
  }

  // Counts one level of recursion for as long as it lives.
  struct Nest {
    explicit Nest(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxNesting) p_.fail("nested too deeply");
    }
    ~Nest() { --p_.depth_; }
    Parser& p_;
  };

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
  bool soft_ = false;
};

}  // namespace

Body parse_template(const std::string& source) {
  Lexer lexer(source);
  Parser parser(lexer.run());
  return parser.parse_all();
}

}  // namespace ember::chat::jinja
