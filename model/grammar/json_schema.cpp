#include "model/grammar/json_schema.h"

#include <array>
#include <cctype>
#include <functional>
#include <map>
#include <set>

#include "model/grammar/char_ranges.h"
#include "model/grammar/regex.h"

namespace ember::grammar {
namespace {

using json = nlohmann::ordered_json;  // properties in the order the schema lists them

constexpr int kMaxUnrolled = 256;  // minItems/maxItems/minLength/maxLength written out up to this

class Compiler {
 public:
  explicit Compiler(const json& root) : root_(&root) {}
  // The schema `$ref`s resolve against from now on (each tool's parameters are their own root).
  void set_root(const json& root) {
    root_ = &root;
    refs_.clear();
  }

  int compile(const json& schema, const std::string& name);
  // The grammar of `value` after an optional blank (SentencePiece's first token starts with one).
  Grammar take(int value) {
    g_.set_root(rule("root", {{Grammar::ref(ws()), Grammar::ref(value)}}));
    return std::move(g_);
  }
  int any_object();
  Grammar forms(const std::vector<Form>& forms, const Framing& framing);

 private:
  int rule(const std::string& name, std::vector<Sequence> alternatives) {
    const int r = g_.add_rule(name);
    for (auto& a : alternatives) g_.add_alternative(r, std::move(a));
    return r;
  }
  int shared(const std::string& name, const std::function<int()>& make) {
    auto it = shared_.find(name);
    if (it != shared_.end()) return it->second;
    return shared_[name] = make();
  }
  static Element lit_el(char c) { return Grammar::bytes(ByteSet().add(static_cast<uint8_t>(c))); }
  static Sequence cat(std::initializer_list<Sequence> parts) {
    Sequence s;
    for (const Sequence& p : parts) s.insert(s.end(), p.begin(), p.end());
    return s;
  }
  static Sequence one(Element e) { return {e}; }
  static Sequence one(int rule) { return {Grammar::ref(rule)}; }

  int ws();
  int digits();  // [0-9]{0,15}
  int string_char();
  int any_string();
  int number();
  int integer();
  int any_value();
  int any_array();
  int literal_value(const json& v);
  int string_of(int char_rule, int min, int max);
  int repeat(int item, int separator_rule, int min, int max, const std::string& name);
  int format(const std::string& f);
  int pattern(const std::string& text);
  int regex(const Regex& r);
  int json_chars(const CodeRanges& ranges);
  int object(const json& schema, const std::string& name);
  int array(const json& schema, const std::string& name);
  int typed(const std::string& type, const json& schema, const std::string& name);
  int ref(const std::string& path);

  const json* root_;
  Grammar g_;
  std::map<std::string, int> shared_;
  std::map<std::string, int> refs_;
  int depth_ = 0;
};

int Compiler::ws() {
  return shared("ws", [&] {
    return rule("ws", {{}, Grammar::literal(" "), Grammar::literal("\n")});
  });
}

int Compiler::digits() {
  // At most 15, so with the digit before them a number has at most 16 digits in its integer
  // part and its fraction (as llama.cpp bounds them): a small model cannot write zeros for ever.
  return shared("digits", [&] {
    const int digit = rule("digit", {{Grammar::bytes(ByteSet().add_range('0', '9'))}});
    return repeat(digit, -1, 0, 15, "digits");
  });
}

int Compiler::string_char() {
  return shared("char", [&] {
    ByteSet plain;
    plain.add_range(0x20, 0xff);
    plain.bits['"' >> 6] &= ~(uint64_t(1) << ('"' & 63));
    plain.bits['\\' >> 6] &= ~(uint64_t(1) << ('\\' & 63));
    const ByteSet hex = ByteSet().add_range('0', '9').add_range('a', 'f').add_range('A', 'F');
    const int r = g_.add_rule("char");
    g_.add_alternative(r, {Grammar::bytes(plain)});
    g_.add_alternative(r, {lit_el('\\'), Grammar::bytes(ByteSet::of("\"\\/bfnrt"))});
    g_.add_alternative(r, {lit_el('\\'), lit_el('u'), Grammar::bytes(hex), Grammar::bytes(hex),
                           Grammar::bytes(hex), Grammar::bytes(hex)});
    return r;
  });
}

// "…" with between min and max (−1: any number of) characters of `char_rule`.
int Compiler::string_of(int char_rule, int min, int max) {
  const int body = repeat(char_rule, -1, min, max, "chars");
  return rule("string", {cat({Grammar::literal("\""), one(body), Grammar::literal("\"")})});
}

int Compiler::any_string() {
  return shared("string", [&] { return string_of(string_char(), 0, -1); });
}

int Compiler::integer() {
  return shared("integer", [&] {
    return rule(
        "integer",
        {cat({Grammar::literal("-"), Grammar::literal("0")}),
         Grammar::literal("0"),
         {lit_el('-'), Grammar::bytes(ByteSet().add_range('1', '9')), Grammar::ref(digits())},
         {Grammar::bytes(ByteSet().add_range('1', '9')), Grammar::ref(digits())}});
  });
}

int Compiler::number() {
  return shared("number", [&] {
    const Element digit = Grammar::bytes(ByteSet().add_range('0', '9'));
    const int frac = rule("frac", {{}, {lit_el('.'), digit, Grammar::ref(digits())}});
    // Exponents of at most two digits: a double overflows past e308, and JSON parsers refuse
    // what overflows.
    const int exp_digits = rule("exp-digits", {{digit}, {digit, digit}});
    const int exp = rule("exp", {{},
                                 {Grammar::bytes(ByteSet::of("eE")), Grammar::ref(exp_digits)},
                                 {Grammar::bytes(ByteSet::of("eE")),
                                  Grammar::bytes(ByteSet::of("+-")), Grammar::ref(exp_digits)}});
    return rule("number", {{Grammar::ref(integer()), Grammar::ref(frac), Grammar::ref(exp)}});
  });
}

// item (separator item)* with the count between min and max (−1: unbounded); separator_rule
// −1: none.
int Compiler::repeat(int item, int separator_rule, int min, int max, const std::string& name) {
  if (min > kMaxUnrolled || max > kMaxUnrolled)
    throw SchemaError(
        max > kMaxUnrolled ? "maxItems" : "minItems",
        "lengths and item counts above " + std::to_string(kMaxUnrolled) + " are not supported");
  auto sep_then_item = [&] {
    Sequence s;
    if (separator_rule >= 0) s.push_back(Grammar::ref(separator_rule));
    s.push_back(Grammar::ref(item));
    return s;
  };
  // tail(k): what may follow once k items are out.
  int tail;
  if (max < 0) {
    tail = g_.add_rule(name + "-more");
    g_.add_alternative(tail, {});
    Sequence s = sep_then_item();
    s.push_back(Grammar::ref(tail));
    g_.add_alternative(tail, s);
    // With nothing between items and none required, that is all: one rule that loops on
    // itself, so a string's state after its opening quote is the state after any character
    // (the token mask takes every plain token at once there).
    if (min == 0 && separator_rule < 0) return tail;
  } else {
    tail = rule(name + "-end", {{}});
  }
  // Items from max down to min are optional, below min required: built back to front.
  int next = tail;
  const int top = max < 0 ? std::max(min, 1) : max;
  for (int k = top; k >= 1; --k) {
    const bool first = k == 1;
    Sequence take = first ? one(item) : sep_then_item();
    take.push_back(Grammar::ref(next));
    std::vector<Sequence> alts{take};
    if (k > min) alts.push_back({});  // stop before the k-th item
    next = rule(name + "-" + std::to_string(k), alts);
  }
  return next;
}

// The generic JSON rules refer to each other, so each is registered before it is defined.
int Compiler::any_array() {
  if (auto it = shared_.find("array"); it != shared_.end()) return it->second;
  const int r = shared_["array"] = g_.add_rule("array");
  const int sep = rule("comma", {cat({Grammar::literal(","), one(ws())})});
  const int item = rule("item", {{Grammar::ref(any_value()), Grammar::ref(ws())}});
  const int items = repeat(item, sep, 0, -1, "items");
  g_.add_alternative(r, cat({Grammar::literal("["), one(ws()), one(items), Grammar::literal("]")}));
  return r;
}

int Compiler::any_object() {
  if (auto it = shared_.find("object"); it != shared_.end()) return it->second;
  const int r = shared_["object"] = g_.add_rule("object");
  const int sep = rule("comma", {cat({Grammar::literal(","), one(ws())})});
  const int member =
      rule("member", {{Grammar::ref(any_string()), Grammar::ref(ws()), lit_el(':'),
                       Grammar::ref(ws()), Grammar::ref(any_value()), Grammar::ref(ws())}});
  const int members = repeat(member, sep, 0, -1, "members");
  g_.add_alternative(r,
                     cat({Grammar::literal("{"), one(ws()), one(members), Grammar::literal("}")}));
  return r;
}

int Compiler::any_value() {
  if (auto it = shared_.find("value"); it != shared_.end()) return it->second;
  const int r = shared_["value"] = g_.add_rule("value");
  for (int alt : {any_object(), any_array(), any_string(), number()})
    g_.add_alternative(r, one(alt));
  for (const char* word : {"true", "false", "null"}) g_.add_alternative(r, Grammar::literal(word));
  return r;
}

int Compiler::literal_value(const json& v) {
  return rule("const", {Grammar::literal(v.dump())});
}

int Compiler::format(const std::string& f) {
  const Element d = Grammar::bytes(ByteSet().add_range('0', '9'));
  const Element hex =
      Grammar::bytes(ByteSet().add_range('0', '9').add_range('a', 'f').add_range('A', 'F'));
  auto n = [&](Element e, int count) { return Sequence(static_cast<size_t>(count), e); };
  const Sequence date =
      cat({n(d, 4), Grammar::literal("-"), n(d, 2), Grammar::literal("-"), n(d, 2)});
  const int frac = rule("fraction", {{}, cat({Grammar::literal("."), one(d), one(digits())})});
  const int zone =
      rule("zone", {Grammar::literal("Z"), cat({one(Grammar::bytes(ByteSet::of("+-"))), n(d, 2),
                                                Grammar::literal(":"), n(d, 2)})});
  const Sequence time = cat({n(d, 2), Grammar::literal(":"), n(d, 2), Grammar::literal(":"),
                             n(d, 2), one(frac), one(zone)});
  Sequence body;
  if (f == "date")
    body = date;
  else if (f == "time")
    body = time;
  else if (f == "date-time")
    body = cat({date, Grammar::literal("T"), time});
  else if (f == "uuid")
    body = cat({n(hex, 8), Grammar::literal("-"), n(hex, 4), Grammar::literal("-"), n(hex, 4),
                Grammar::literal("-"), n(hex, 4), Grammar::literal("-"), n(hex, 12)});
  else if (f == "email") {
    ByteSet local = ByteSet().add_range('a', 'z').add_range('A', 'Z').add_range('0', '9');
    for (char c : std::string("._%+-")) local.add(static_cast<uint8_t>(c));
    ByteSet domain = ByteSet().add_range('a', 'z').add_range('A', 'Z').add_range('0', '9').add('-');
    const int local_part =
        repeat(rule("local-char", {one(Grammar::bytes(local))}), -1, 1, -1, "local");
    const int label =
        repeat(rule("domain-char", {one(Grammar::bytes(domain))}), -1, 1, -1, "label");
    const int labels = repeat(label, rule("dot", {Grammar::literal(".")}), 2, -1, "labels");
    body = {Grammar::ref(local_part), lit_el('@'), Grammar::ref(labels)};
  } else {
    throw SchemaError("format", "string format '" + f +
                                    "' is not supported (date, date-time, time, uuid, email are)");
  }
  return rule("format-" + f, {cat({Grammar::literal("\""), body, Grammar::literal("\"")})});
}

int Compiler::object(const json& schema, const std::string& name) {
  if (!schema.contains("properties")) return any_object();
  const json& props = schema["properties"];
  if (!props.is_object()) throw SchemaError("properties", "'properties' must be an object");
  std::set<std::string> required;
  if (schema.contains("required")) {
    if (!schema["required"].is_array())
      throw SchemaError("required", "'required' must be an array");
    for (const json& r : schema["required"]) required.insert(r.get<std::string>());
  }
  std::vector<std::pair<std::string, int>> fields;
  for (auto it = props.begin(); it != props.end(); ++it)
    fields.emplace_back(it.key(), compile(it.value(), name + "-" + it.key()));
  // after[i][first]: the rest of the object from field i on; `first`: nothing written yet.
  const int n = static_cast<int>(fields.size());
  std::vector<std::array<int, 2>> after(n + 1);
  after[n] = {rule(name + "-close", {Grammar::literal("}")}), 0};
  after[n][1] = after[n][0];
  for (int i = n - 1; i >= 0; --i)
    for (int first = 0; first < 2; ++first) {
      Sequence field;
      if (!first) field = cat({Grammar::literal(","), one(ws())});
      field = cat({field, Grammar::literal(json(fields[i].first).dump()), one(ws()),
                   Grammar::literal(":"), one(ws()), one(fields[i].second), one(ws()),
                   one(after[i + 1][0])});
      std::vector<Sequence> alts{field};
      if (!required.count(fields[i].first)) alts.push_back(one(after[i + 1][first]));
      after[i][first] = rule(name + "-from-" + fields[i].first, alts);
    }
  for (const auto& r : required)
    if (!props.contains(r))
      throw SchemaError("required", "required property '" + r + "' is not in 'properties'");
  return rule(name, {cat({Grammar::literal("{"), one(ws()), one(after[0][1])})});
}

int Compiler::array(const json& schema, const std::string& name) {
  const int min = schema.value("minItems", 0);
  const int max = schema.contains("maxItems") ? schema["maxItems"].get<int>() : -1;
  if (min < 0 || (max >= 0 && max < min))
    throw SchemaError("maxItems", "'maxItems' is below 'minItems'");
  const int item_value =
      schema.contains("items") ? compile(schema["items"], name + "-item") : any_value();
  const int item = rule(name + "-item", {{Grammar::ref(item_value), Grammar::ref(ws())}});
  const int sep = rule("comma", {cat({Grammar::literal(","), one(ws())})});
  const int items = repeat(item, sep, min, max, name);
  return rule(name, {cat({Grammar::literal("["), one(ws()), one(items), Grammar::literal("]")})});
}

int Compiler::typed(const std::string& type, const json& schema, const std::string& name) {
  if (type == "object") return object(schema, name);
  if (type == "array") return array(schema, name);
  if (type == "string") {
    const int constraints = schema.contains("format") + schema.contains("pattern") +
                            (schema.contains("minLength") || schema.contains("maxLength"));
    if (constraints > 1)
      throw SchemaError(schema.contains("pattern") ? "pattern" : "format",
                        "a string with more than one of 'format', 'pattern' and "
                        "'minLength'/'maxLength' is not supported");
    if (schema.contains("pattern")) return pattern(schema["pattern"].get<std::string>());
    if (schema.contains("format")) return format(schema["format"].get<std::string>());
    const int min = schema.value("minLength", 0);
    const int max = schema.contains("maxLength") ? schema["maxLength"].get<int>() : -1;
    if (min == 0 && max < 0) return any_string();
    return string_of(string_char(), min, max);
  }
  if (type == "number") return number();
  if (type == "integer") return integer();
  if (type == "boolean")
    return rule("boolean", {Grammar::literal("true"), Grammar::literal("false")});
  if (type == "null") return rule("null", {Grammar::literal("null")});
  throw SchemaError("type", "unknown type '" + type + "'");
}

// One character of `ranges` as a JSON string writes it: plain characters as they are, '"' and
// '\\' escaped, control characters as \n \t \r \b \f or \u00XX, others as UTF-8.
int Compiler::json_chars(const CodeRanges& ranges) {
  ByteSet direct;
  std::vector<Sequence> alternatives;
  for (const auto& [lo, hi] : normalise(ranges)) {
    for (uint32_t cp = lo; cp <= std::min(hi, 0x7Fu); ++cp) {
      static const std::map<uint32_t, const char*> kShort = {
          {'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"}, {'\t', "\\t"},
          {'\r', "\\r"}, {'\b', "\\b"},  {'\f', "\\f"}};
      if (auto it = kShort.find(cp); it != kShort.end()) {
        alternatives.push_back(Grammar::literal(it->second));
      } else if (cp < 0x20) {
        const char* hex = "0123456789abcdef";
        Sequence seq = Grammar::literal("\\u00");
        seq.push_back(lit_el(hex[cp >> 4]));
        const char low = hex[cp & 15];
        seq.push_back(
            Grammar::bytes(ByteSet::of(std::string{low, static_cast<char>(std::toupper(low))})));
        alternatives.push_back(std::move(seq));
      } else {
        direct.add(static_cast<uint8_t>(cp));
      }
    }
    if (hi >= 0x80) utf8_sequences(std::max(lo, 0x80u), hi, alternatives);
  }
  if (direct.bits != ByteSet().bits) alternatives.push_back({Grammar::bytes(direct)});
  return rule("pattern-char", alternatives);
}

int Compiler::regex(const Regex& r) {
  switch (r.kind) {
    case Regex::kChars:
      return json_chars(r.chars);
    case Regex::kSequence: {
      Sequence seq;
      for (const Regex& item : r.items) seq.push_back(Grammar::ref(regex(item)));
      return rule("pattern-seq", {seq});
    }
    case Regex::kAlternatives: {
      std::vector<Sequence> alternatives;
      for (const Regex& item : r.items) alternatives.push_back(one(regex(item)));
      return rule("pattern-alt", alternatives);
    }
    case Regex::kRepeat:
      if (r.min > kMaxUnrolled || r.max > kMaxUnrolled)
        throw SchemaError("pattern", "'pattern' counts above " + std::to_string(kMaxUnrolled) +
                                         " are not supported");
      return repeat(regex(r.items[0]), -1, r.min, r.max, "pattern-repeat");
  }
  return -1;
}

// A JSON string whose text matches `text` (ECMA-262, unanchored unless ^…$).
int Compiler::pattern(const std::string& text) {
  Pattern p;
  try {
    p = parse_pattern(text);
  } catch (const std::invalid_argument& e) {
    throw SchemaError("pattern", "'pattern' " + json(text).dump() + ": " + e.what());
  }
  const int any = repeat(string_char(), -1, 0, -1, "chars");
  Sequence body = Grammar::literal("\"");
  if (!p.anchored_start) body.push_back(Grammar::ref(any));
  body.push_back(Grammar::ref(regex(p.body)));
  if (!p.anchored_end) body.push_back(Grammar::ref(any));
  body.push_back(lit_el('"'));
  return rule("pattern", {body});
}

int Compiler::ref(const std::string& path) {
  auto it = refs_.find(path);
  if (it != refs_.end()) return it->second;
  std::string section, def;
  if (path.rfind("#/$defs/", 0) == 0)
    section = "$defs", def = path.substr(8);
  else if (path.rfind("#/definitions/", 0) == 0)
    section = "definitions", def = path.substr(14);
  if (def.empty() || !root_->contains(section) || !(*root_)[section].contains(def))
    throw SchemaError("$ref",
                      "'$ref' " + path + " does not name a schema under #/$defs or #/definitions");
  const int r = g_.add_rule("ref-" + def);
  refs_[path] = r;  // before compiling: the definition may refer to itself
  g_.add_alternative(r, one(compile((*root_)[section][def], def)));
  return r;
}

int Compiler::compile(const json& schema, const std::string& name) {
  if (schema.is_boolean()) {
    if (!schema.get<bool>()) throw SchemaError("false", "a 'false' schema accepts nothing");
    return any_value();
  }
  if (!schema.is_object()) throw SchemaError("schema", "a schema must be an object");
  struct Depth {  // schemas nest at most kMaxDepth deep (the compiler recurses)
    int& d;
    explicit Depth(int& depth) : d(depth) {
      if (++d > 64) throw SchemaError("schema", "the schema nests deeper than 64 levels");
    }
    ~Depth() { --d; }
  } guard(depth_);
  static const std::set<std::string> kKnown = {
      "type",     "properties", "required",    "items",       "minItems",
      "maxItems", "enum",       "const",       "anyOf",       "oneOf",
      "$ref",     "$defs",      "definitions", "minLength",   "maxLength",
      "format",   "pattern",    "title",       "description", "default",
      "examples", "$schema",    "$id",         "$comment",    "additionalProperties",
      "strict",   "nullable"};
  for (auto it = schema.begin(); it != schema.end(); ++it)
    if (!kKnown.count(it.key()))
      throw SchemaError(it.key(), "JSON Schema keyword '" + it.key() + "' is not supported");
  if (schema.contains("additionalProperties") && schema["additionalProperties"].is_object() &&
      !schema.contains("properties"))
    throw SchemaError("additionalProperties",
                      "'additionalProperties' schemas without 'properties' are not supported");
  if (schema.contains("$ref")) return ref(schema["$ref"].get<std::string>());
  if (schema.contains("const")) return literal_value(schema["const"]);
  if (schema.contains("enum")) {
    if (!schema["enum"].is_array() || schema["enum"].empty())
      throw SchemaError("enum", "'enum' must be a non-empty array");
    std::vector<Sequence> alts;
    for (const json& v : schema["enum"]) alts.push_back(Grammar::literal(v.dump()));
    return rule(name + "-enum", alts);
  }
  for (const char* key : {"anyOf", "oneOf"})
    if (schema.contains(key)) {
      if (!schema[key].is_array() || schema[key].empty())
        throw SchemaError(key, std::string("'") + key + "' must be a non-empty array");
      std::vector<Sequence> alts;
      int i = 0;
      for (const json& s : schema[key])
        alts.push_back(one(compile(s, name + "-" + std::to_string(i++))));
      return rule(name + "-" + key, alts);
    }
  if (!schema.contains("type")) {
    if (schema.contains("properties")) return object(schema, name);
    if (schema.contains("pattern")) return typed("string", schema, name);
    if (schema.contains("items")) return array(schema, name);
    return any_value();
  }
  const json& type = schema["type"];
  if (type.is_string()) {
    const int r = typed(type.get<std::string>(), schema, name);
    if (schema.value("nullable", false))
      return rule(name + "-nullable", {one(r), Grammar::literal("null")});
    return r;
  }
  if (!type.is_array() || type.empty())
    throw SchemaError("type", "'type' must be a string or a list");
  std::vector<Sequence> alts;
  for (const json& t : type) alts.push_back(one(typed(t.get<std::string>(), schema, name)));
  return rule(name + "-types", alts);
}

}  // namespace

Grammar json_object_grammar() {
  Compiler c(json::object());
  const int root = c.any_object();
  return c.take(root);
}

Grammar Compiler::forms(const std::vector<Form>& forms, const Framing& framing) {
  if (forms.empty()) throw SchemaError("forms", "no forms to choose from");
  std::vector<Sequence> items;
  for (size_t i = 0; i < forms.size(); ++i) {
    Sequence seq;
    for (const Piece& piece : forms[i]) {
      if (!piece.schema) {
        const Sequence text = Grammar::literal(piece.text);
        seq.insert(seq.end(), text.begin(), text.end());
        continue;
      }
      set_root(*piece.schema);
      seq.push_back(Grammar::ref(compile(*piece.schema, "form" + std::to_string(i))));
    }
    items.push_back(std::move(seq));
  }
  const int item = rule("item", items);
  const int separator = rule("separator", {Grammar::literal(framing.separator)});
  const int list =
      repeat(item, separator, 1, framing.max_items > 0 ? framing.max_items : -1, "items");
  g_.set_root(rule("root", {cat({one(ws()), Grammar::literal(framing.prefix), one(list),
                                 Grammar::literal(framing.suffix)})}));
  return std::move(g_);
}

Grammar grammar_from_forms(const std::vector<Form>& forms, const Framing& framing) {
  static const json kNone = json::object();
  Compiler c(kNone);
  try {
    return c.forms(forms, framing);
  } catch (const json::exception& e) {
    throw SchemaError("schema", std::string("a schema value has the wrong type: ") + e.what());
  }
}

Grammar grammar_from_schema(const nlohmann::ordered_json& schema) {
  Compiler c(schema);
  try {
    const int root = c.compile(schema, "root");
    return c.take(root);
  } catch (const json::exception& e) {
    throw SchemaError("schema", std::string("a schema value has the wrong type: ") + e.what());
  }
}

}  // namespace ember::grammar
