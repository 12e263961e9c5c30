// Lexer and recursive-descent parser for Jinja templates (see jinja_ast.h).
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <set>

#include "model/chat/jinja_ast.h"

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
};

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      std::string text = src_.substr(pos, tag - pos);
      if (tag == src_.size()) {
        emit_text(text, pos);
        break;
      }
      char kind = src_[tag + 1];
      char modifier = tag + 2 < src_.size() ? src_[tag + 2] : 0;
      if (modifier == '-') {
        while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
          text.pop_back();
      } else if (kind != '{' && modifier != '+') {
        // lstrip_blocks: blanks between the start of a line and a block or comment tag go.
        size_t blank = text.size();
        while (blank > 0 && is_blank(text[blank - 1])) --blank;
        size_t absolute = pos + blank;  // where the blank run starts in the source
        if (absolute == 0 || src_[absolute - 1] == '\n') text.resize(blank);
      }
      emit_text(text, pos);
      size_t inner = tag + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
      if (kind == '#') {
        size_t close = src_.find("#}", inner);
        if (close == std::string::npos) throw Error(where(tag) + "unclosed comment");
        pos = after_tag(close + 2, close > inner && src_[close - 1] == '-', true);
        continue;
      }
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
  size_t line_of(size_t pos) const {
    size_t line = 1;
    for (size_t i = 0; i < pos && i < src_.size(); ++i) line += src_[i] == '\n';
    return line;
  }
  std::string where(size_t pos) const {
    return "template line " + std::to_string(line_of(pos)) + ": ";
  }

  void emit_text(const std::string& text, size_t pos) {
    if (!text.empty()) tokens_.push_back({Token::Kind::kText, text, line_of(pos)});
  }

  // After a closing tag: `-` strips the whitespace that follows; trim_blocks drops one newline
  // after block and comment tags.
  size_t after_tag(size_t pos, bool strip, bool block) const {
    if (strip) {
      while (pos < src_.size() && std::isspace(static_cast<unsigned char>(src_[pos]))) ++pos;
    } else if (block) {
      if (src_.compare(pos, 2, "\r\n") == 0)
        pos += 2;
      else if (pos < src_.size() && src_[pos] == '\n')
        ++pos;
    }
    return pos;
  }

  size_t lex_inside(size_t pos, char kind) {
    const char close = kind == '{' ? '}' : '%';
    int depth = 0;  // open ( [ { inside the tag: a } there is not the end
    while (pos < src_.size()) {
      char c = src_[pos];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++pos;
        continue;
      }
      if (depth == 0 && c == '-' && src_.compare(pos + 1, 2, std::string{close, '}'}) == 0) {
        tokens_.push_back(
            {kind == '{' ? Token::Kind::kVarEnd : Token::Kind::kBlockEnd, "", line_of(pos)});
        return after_tag(pos + 3, true, kind == '%');
      }
      if (depth == 0 && c == close && pos + 1 < src_.size() && src_[pos + 1] == '}') {
        tokens_.push_back(
            {kind == '{' ? Token::Kind::kVarEnd : Token::Kind::kBlockEnd, "", line_of(pos)});
        return after_tag(pos + 2, false, kind == '%');
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
        size_t end = pos;
        while (end < src_.size() &&
               (std::isdigit(static_cast<unsigned char>(src_[end])) || src_[end] == '_'))
          ++end;
        bool is_float = false;
        if (end + 1 < src_.size() && src_[end] == '.' &&
            std::isdigit(static_cast<unsigned char>(src_[end + 1]))) {
          is_float = true;
          ++end;
          while (end < src_.size() && std::isdigit(static_cast<unsigned char>(src_[end]))) ++end;
        }
        if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
          size_t e = end + 1;
          if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
          if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
            is_float = true;
            end = e;
            while (end < src_.size() && std::isdigit(static_cast<unsigned char>(src_[end]))) ++end;
          }
        }
        std::string digits;
        for (size_t i = pos; i < end; ++i)
          if (src_[i] != '_') digits += src_[i];
        tokens_.push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, digits, line});
        pos = end;
      } else if (c == '\'' || c == '"') {
        std::string value;
        size_t i = pos + 1;
        for (; i < src_.size() && src_[i] != c; ++i) {
          if (src_[i] == '\\' && i + 1 < src_.size()) {
            char e = src_[++i];
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
              case '\\':
                value += '\\';
                break;
              case '\'':
                value += '\'';
                break;
              case '"':
                value += '"';
                break;
              default:
                value += '\\', value += e;
            }
          } else {
            value += src_[i];
          }
        }
        if (i >= src_.size()) throw Error(where(pos) + "unterminated string");
        tokens_.push_back({Token::Kind::kString, value, line});
        pos = i + 1;
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

  const std::string& src_;
  std::vector<Token> tokens_;
};

// Deeper nesting than this (parentheses, unary operators, blocks) is refused rather than risking
// the stack on a hostile template.
constexpr int kMaxNesting = 200;

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

  StmtPtr parse_statement() {
    Nest nest(*this);
    auto s = std::make_unique<Stmt>();
    s->line = peek().line;
    std::string keyword = take_name();
    if (keyword == "if") {
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
        s->targets.push_back(take_name());
      }
      if (paren) expect_op(")");
      expect_name("in");
      s->expr = parse_or();  // not a conditional: `if` here filters the loop
      if (is_name("if")) {
        ++i_;
        s->condition = parse_or();
      }
      if (is_name("recursive")) fail("recursive loops are not supported");
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
      if (peek().kind == Token::Kind::kBlockEnd && !s->attribute_target && s->targets.size() == 1) {
        ++i_;
        s->kind = Stmt::Kind::kSetBlock;
        s->name = first;
        s->body = parse_body({"endset"});
        close("endset");
      } else {
        s->kind = Stmt::Kind::kSet;
        expect_op("=");
        s->expr = parse_tuple_or_expression();
        expect_block_end();
      }
    } else if (keyword == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->name = take_name();
      expect_op("(");
      while (!is_op(")")) {
        std::string param = take_name();
        ExprPtr fallback;
        if (is_op("=")) {
          ++i_;
          fallback = parse_expression();
        }
        s->params.emplace_back(param, std::move(fallback));
        if (!is_op(")")) expect_op(",");
      }
      ++i_;
      expect_block_end();
      s->body = parse_body({"endmacro"});
      close("endmacro");
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

  // `a, b` without parentheses builds a tuple (in `set` values).
  ExprPtr parse_tuple_or_expression() {
    ExprPtr first = parse_expression();
    if (!is_op(",")) return first;
    ExprPtr tuple = make(Expr::Kind::kTuple);
    tuple->args.push_back(std::move(first));
    while (is_op(",")) {
      ++i_;
      tuple->args.push_back(parse_expression());
    }
    return tuple;
  }

  ExprPtr parse_expression() {
    Nest nest(*this);
    ExprPtr value = parse_or();
    if (is_name("if")) {
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
    return value;
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
        t->target = std::move(e);
        if (is_op("(")) {
          parse_call_args(*t);
        } else if (starts_argument()) {
          t->args.push_back(parse_unary(false));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  // Whether the next token can start the single unparenthesised argument of a test.
  bool starts_argument() const {
    const Token& tok = peek();
    if (tok.kind == Token::Kind::kString || tok.kind == Token::Kind::kInt ||
        tok.kind == Token::Kind::kFloat)
      return true;
    if (tok.kind == Token::Kind::kName) {
      static const std::set<std::string> kStop = {"and", "or", "else", "if", "in", "is", "not"};
      return !kStop.count(tok.text);
    }
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
      case Token::Kind::kInt: {
        errno = 0;
        long long v = std::strtoll(tok.text.c_str(), nullptr, 10);
        if (errno == ERANGE) fail("integer literal too large");
        ++i_;
        return literal(Value(static_cast<int64_t>(v)));
      }
      case Token::Kind::kFloat:
        return literal(Value(std::strtod(next().text.c_str(), nullptr)));
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
};

}  // namespace

Body parse_template(const std::string& source) {
  Lexer lexer(source);
  Parser parser(lexer.run());
  return parser.parse_all();
}

}  // namespace ember::chat::jinja
