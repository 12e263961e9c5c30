#include "model/chat/tool_calls.h"

#include <nlohmann/json.hpp>
#include <random>

namespace ember::chat {
namespace {

constexpr size_t kIncomplete = std::string_view::npos;  // the text ends before the item does
constexpr size_t kBad = kIncomplete - 1;                // the text is not that item

struct SyntaxInfo {
  ToolSyntax syntax;
  const char* name;
  const char* detect;   // in the template's source: the template teaches this syntax
  const char* marker;   // the text calls start with ("": a JSON object opening the answer)
  const char* opening;  // what a forced call is opened with (the marker as templates write it)
  const char* closing;  // after each call (hermes, phi4)
};

// Looked up in order: the first whose `detect` is in the template wins.
constexpr SyntaxInfo kSyntaxes[] = {
    {ToolSyntax::kHermes, "hermes", "<tool_call>", "<tool_call>", "<tool_call>\n", "</tool_call>"},
    {ToolSyntax::kMistralArgs, "mistral-args", "[ARGS]", "[TOOL_CALLS]", "[TOOL_CALLS]", ""},
    {ToolSyntax::kMistral, "mistral", "[TOOL_CALLS]", "[TOOL_CALLS]", "[TOOL_CALLS]", ""},
    {ToolSyntax::kPhi4, "phi4", "<|tool_call|>", "<|tool_call|>", "<|tool_call|>",
     "<|/tool_call|>"},
    {ToolSyntax::kLlama3, "llama3", "<|python_tag|>", "<|python_tag|>", "", ""},
    {ToolSyntax::kGeneric, "generic", "", "", "", ""},
};

const SyntaxInfo& info(ToolSyntax syntax) {
  for (const SyntaxInfo& s : kSyntaxes)
    if (s.syntax == syntax) return s;
  return kSyntaxes[std::size(kSyntaxes) - 1];
}

bool blank(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

void skip_blanks(std::string_view s, size_t& pos) {
  while (pos < s.size() && blank(s[pos])) ++pos;
}

// 1: `word` is at pos (pos moves past it); 0: the text ends inside a prefix of it; −1: it is not.
int expect(std::string_view s, size_t& pos, std::string_view word) {
  const std::string_view rest = s.substr(pos);
  if (rest.substr(0, word.size()) == word) {
    pos += word.size();
    return 1;
  }
  return word.substr(0, rest.size()) == rest ? 0 : -1;
}

// Just past the JSON value that starts at pos; kIncomplete when the text ends inside it, kBad
// when no value starts there. Brackets are matched, not checked: the caller parses the result.
size_t value_end(std::string_view s, size_t pos) {
  if (pos >= s.size()) return kIncomplete;
  const char c = s[pos];
  if (c == '"') {
    for (size_t i = pos + 1; i < s.size(); ++i) {
      if (s[i] == '\\')
        ++i;
      else if (s[i] == '"')
        return i + 1;
    }
    return kIncomplete;
  }
  if (c == '{' || c == '[') {
    int depth = 0;
    bool in_string = false;
    for (size_t i = pos; i < s.size(); ++i) {
      const char ch = s[i];
      if (in_string) {
        if (ch == '\\')
          ++i;
        else if (ch == '"')
          in_string = false;
      } else if (ch == '"') {
        in_string = true;
      } else if (ch == '{' || ch == '[') {
        ++depth;
      } else if ((ch == '}' || ch == ']') && --depth == 0) {
        return i + 1;
      }
    }
    return kIncomplete;
  }
  if (c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n') {
    size_t i = pos;
    while (i < s.size() && std::string_view(",}] \t\r\n").find(s[i]) == std::string_view::npos) ++i;
    return i == s.size() ? kIncomplete : i;
  }
  return kBad;
}

// A JSON string's content, or nullopt when the text is not one.
std::optional<std::string> json_string(std::string_view text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_string()) return std::nullopt;
  return j.get<std::string>();
}

struct CallView;
struct CallRules;
bool known(const CallRules& rules, const std::string& name);

struct CallView {
  std::string name, id;
  std::string arguments;          // the text so far (all of it once complete)
  bool arguments_quoted = false;  // written as a JSON string: handed out once complete
  bool name_first = false;        // the name came before the arguments began
  bool arguments_open = false;    // the text ends inside the arguments
  bool complete = false;
};

enum class ScanState { kIncomplete, kStopped, kBad };

struct Scan {
  std::vector<CallView> calls;
  size_t end = 0;  // just past the last complete call (and its closing)
  ScanState state = ScanState::kIncomplete;
};

// Reads the arguments value at pos into `call`; the position after it, or kIncomplete/kBad.
size_t read_arguments(std::string_view s, size_t pos, CallView& call) {
  const size_t end = value_end(s, pos);
  if (end == kBad) return kBad;
  call.name_first = !call.name.empty();
  call.arguments_quoted = s[pos] == '"';
  if (end == kIncomplete) {
    if (!call.arguments_quoted) call.arguments = std::string(s.substr(pos));
    call.arguments_open = true;
    return kIncomplete;
  }
  const std::string_view text = s.substr(pos, end - pos);
  if (call.arguments_quoted) {
    auto inner = json_string(text);
    if (!inner) return kBad;
    call.arguments = *inner;
  } else {
    if (!nlohmann::json::accept(text)) return kBad;
    call.arguments = std::string(text);
  }
  return end;
}

// What a call must look like beyond its syntax.
struct CallRules {
  bool require_arguments = false;         // JSON-only syntaxes: a plain JSON answer is no call
  const std::vector<std::string>* names;  // the request's functions (empty: any)
};

bool known(const CallRules& rules, const std::string& name) {
  return rules.names->empty() ||
         std::find(rules.names->begin(), rules.names->end(), name) != rules.names->end();
}

// {"name": N, "arguments"|"parameters": A, ...} (or OpenAI's {"type", "function": {...}}) at pos.
size_t read_call_object(std::string_view s, size_t pos, CallView& call, const CallRules& rules) {
  if (pos >= s.size()) return kIncomplete;
  if (s[pos] != '{') return kBad;
  ++pos;
  bool have_arguments = false;
  while (true) {
    skip_blanks(s, pos);
    if (pos >= s.size()) return kIncomplete;
    if (s[pos] == '}') break;
    const size_t key_end = value_end(s, pos);
    if (key_end == kIncomplete) return kIncomplete;
    if (key_end == kBad || s[pos] != '"') return kBad;
    const auto key = json_string(s.substr(pos, key_end - pos));
    if (!key) return kBad;
    pos = key_end;
    skip_blanks(s, pos);
    if (pos >= s.size()) return kIncomplete;
    if (s[pos] != ':') return kBad;
    ++pos;
    skip_blanks(s, pos);
    if (pos >= s.size()) return kIncomplete;
    size_t end;
    if (*key == "arguments" || *key == "parameters") {
      if (have_arguments) return kBad;  // a second value would not extend the first
      end = read_arguments(s, pos, call);
      have_arguments = true;
    } else if (*key == "function" && s[pos] == '{') {
      if (have_arguments) return kBad;
      end = read_call_object(s, pos, call, rules);
      have_arguments = true;
    } else {
      end = value_end(s, pos);
      if (end != kIncomplete && end != kBad && (*key == "name" || *key == "id")) {
        auto text = json_string(s.substr(pos, end - pos));
        if (!text) return kBad;
        (*key == "name" ? call.name : call.id) = *text;
      }
    }
    if (end == kIncomplete || end == kBad) return end;
    pos = end;
    skip_blanks(s, pos);
    if (pos >= s.size()) return kIncomplete;
    if (s[pos] == ',') {
      ++pos;
      continue;
    }
    if (s[pos] != '}') return kBad;
    break;
  }
  if (call.name.empty() || !known(rules, call.name)) return kBad;
  if (!have_arguments) {
    if (rules.require_arguments) return kBad;
    call.arguments = "{}";
  }
  call.complete = true;
  return pos + 1;
}

// A JSON list of call objects at pos.
size_t read_call_list(std::string_view s, size_t pos, Scan& scan, const CallRules& rules) {
  if (pos >= s.size()) return kIncomplete;
  if (s[pos] != '[') return kBad;
  ++pos;
  while (true) {
    skip_blanks(s, pos);
    if (pos >= s.size()) return kIncomplete;
    if (s[pos] == ']') return pos + 1;
    scan.calls.emplace_back();
    const size_t end = read_call_object(s, pos, scan.calls.back(), rules);
    if (end == kIncomplete || end == kBad) return end;
    pos = end;
    skip_blanks(s, pos);
    if (pos >= s.size()) return kIncomplete;
    if (s[pos] == ',') ++pos;
  }
}

// Mistral Small 3.2: NAME[CALL_ID]ID[ARGS]{...} after [TOOL_CALLS].
size_t read_args_call(std::string_view s, size_t pos, CallView& call, const CallRules& rules) {
  const size_t args = s.find("[ARGS]", pos);
  const size_t id = s.find("[CALL_ID]", pos);
  const size_t name_end = std::min(args, id);
  if (name_end == std::string_view::npos) {
    // Still inside the name (or a marker's first characters): wait unless it cannot be one.
    return s.find_first_of("{}\n\"", pos) == std::string_view::npos ? kIncomplete : kBad;
  }
  call.name = std::string(s.substr(pos, name_end - pos));
  if (call.name.empty() || !known(rules, call.name)) return kBad;
  if (id < args) {
    if (args == std::string_view::npos) return kIncomplete;
    call.id = std::string(s.substr(id + 9, args - id - 9));
  }
  size_t at = args + 6;
  skip_blanks(s, at);
  const size_t end = read_arguments(s, at, call);
  if (end != kIncomplete && end != kBad) call.complete = true;
  return end;
}

Scan scan_calls(ToolSyntax syntax, std::string_view s, const std::vector<std::string>& names) {
  Scan scan;
  const CallRules rules{syntax == ToolSyntax::kLlama3 || syntax == ToolSyntax::kGeneric, &names};
  const SyntaxInfo& si = info(syntax);
  size_t pos = 0;
  // Marks what is done so far: the calls read and where they end.
  auto settle = [&](size_t at) { scan.end = at; };
  auto result = [&](size_t r) {
    if (r == kBad) {  // the calls before this one stand; this one is not a call
      while (!scan.calls.empty() && !scan.calls.back().complete) scan.calls.pop_back();
      scan.state = scan.calls.empty() ? ScanState::kBad : ScanState::kStopped;
    }
    return scan;
  };
  while (true) {
    skip_blanks(s, pos);
    if (pos >= s.size()) return scan;  // incomplete: more may come
    switch (syntax) {
      case ToolSyntax::kHermes:
      case ToolSyntax::kPhi4: {
        const int open = expect(s, pos, si.marker);
        if (open == 0) return scan;
        if (open < 0) return result(kBad);
        skip_blanks(s, pos);
        size_t end;
        if (pos < s.size() && s[pos] == '[') {
          end = read_call_list(s, pos, scan, rules);
        } else {
          scan.calls.emplace_back();
          end = read_call_object(s, pos, scan.calls.back(), rules);
        }
        if (end == kIncomplete || end == kBad) return result(end);
        pos = end;
        skip_blanks(s, pos);
        const int close = expect(s, pos, si.closing);
        if (close == 0) return scan;
        settle(pos);  // a missing closing is forgiven (a grammar may stop before it)
        break;
      }
      case ToolSyntax::kMistral:
      case ToolSyntax::kMistralArgs: {
        const int open = expect(s, pos, si.marker);
        if (open == 0) return scan;
        if (open < 0) return result(kBad);
        skip_blanks(s, pos);
        if (pos >= s.size()) return scan;
        size_t end;
        if (s[pos] == '[') {
          end = read_call_list(s, pos, scan, rules);
        } else {
          scan.calls.emplace_back();
          end = read_args_call(s, pos, scan.calls.back(), rules);
        }
        if (end == kIncomplete || end == kBad) return result(end);
        settle(pos = end);
        break;
      }
      case ToolSyntax::kLlama3: {
        if (expect(s, pos, si.marker) == 0) return scan;
        skip_blanks(s, pos);
        scan.calls.emplace_back();
        const size_t end = read_call_object(s, pos, scan.calls.back(), rules);
        if (end == kIncomplete || end == kBad) return result(end);
        pos = end;
        skip_blanks(s, pos);
        if (pos < s.size() && s[pos] == ';') ++pos;
        settle(pos);
        break;
      }
      case ToolSyntax::kGeneric: {
        // {"tool_calls": [...]} or {"tool_call": {...}}; the wrapper's first key decides.
        if (s[pos] != '{') return result(kBad);
        size_t at = pos + 1;
        skip_blanks(s, at);
        const size_t key_end = value_end(s, at);
        if (key_end == kIncomplete) return scan;
        if (key_end == kBad || s[at] != '"') return result(kBad);
        const auto key = json_string(s.substr(at, key_end - at));
        if (!key || (*key != "tool_calls" && *key != "tool_call")) return result(kBad);
        at = key_end;
        skip_blanks(s, at);
        if (at >= s.size()) return scan;
        if (s[at] != ':') return result(kBad);
        ++at;
        skip_blanks(s, at);
        size_t end;
        if (*key == "tool_calls") {
          end = read_call_list(s, at, scan, rules);
        } else {
          scan.calls.emplace_back();
          end = read_call_object(s, at, scan.calls.back(), rules);
        }
        if (end == kIncomplete || end == kBad) return result(end);
        at = end;
        skip_blanks(s, at);
        if (at >= s.size()) return scan;
        if (s[at] != '}') return result(kBad);
        settle(pos = at + 1);
        break;
      }
    }
  }
}

}  // namespace

ToolSupport tool_support(std::string_view source) {
  ToolSupport t;
  auto has = [&](std::string_view needle) { return source.find(needle) != std::string_view::npos; };
  for (const SyntaxInfo& s : kSyntaxes)
    if (*s.detect && has(s.detect)) {
      t.syntax = s.syntax;
      break;
    }
  // Llama 3.x teaches its JSON form in words and renders results under the ipython role.
  if (t.syntax == ToolSyntax::kGeneric && has("ipython") && has("\"parameters\""))
    t.syntax = ToolSyntax::kLlama3;
  t.renders_tools = has("tools");
  t.renders_tool_calls = has("tool_calls");
  t.renders_tool_role = has("'tool'") || has("\"tool\"") || has("ipython");
  return t;
}

const char* syntax_name(ToolSyntax syntax) {
  return info(syntax).name;
}

std::string_view call_opening(ToolSyntax syntax) {
  return info(syntax).opening;
}

std::vector<std::string> syntax_markers(ToolSyntax syntax) {
  switch (syntax) {
    case ToolSyntax::kHermes:
      return {"<tool_call>", "</tool_call>"};
    case ToolSyntax::kLlama3:
      return {"<|python_tag|>"};
    case ToolSyntax::kMistral:
      return {"[TOOL_CALLS]"};
    case ToolSyntax::kMistralArgs:
      return {"[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"};
    case ToolSyntax::kPhi4:
      return {"<|tool_call|>", "<|/tool_call|>"};
    case ToolSyntax::kGeneric:
      break;
  }
  return {};
}

ToolCallParser::ToolCallParser(ToolSyntax syntax, std::vector<std::string> names)
    : syntax_(syntax), names_(std::move(names)) {}

std::string ToolCallParser::new_id() const {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const bool mistral = syntax_ == ToolSyntax::kMistral || syntax_ == ToolSyntax::kMistralArgs;
  std::string id = mistral ? "" : "call_";
  for (int i = 0; i < (mistral ? 9 : 24); ++i) id += kChars[rng() % (sizeof kChars - 1)];
  return id;
}

void ToolCallParser::push(std::string_view text, std::vector<ChatDelta>& out) {
  pending_ += text;
  auto content = [&](size_t n) {
    if (n == 0) return;
    const std::string piece = pending_.substr(0, n);
    if (piece.find_first_not_of(" \n\t\r") != std::string::npos) content_seen_ = true;
    out.push_back({ChatDelta::kContent, piece});
    pending_.erase(0, n);
  };
  if (!in_calls_) {
    // Where calls may start: the syntax's marker, or for JSON syntaxes an object that opens
    // the answer.
    const std::string_view marker = info(syntax_).marker;
    size_t start = marker.empty() ? std::string::npos : pending_.find(marker);
    const bool json_start = syntax_ == ToolSyntax::kLlama3 || syntax_ == ToolSyntax::kGeneric;
    if (json_start && !content_seen_) {
      const size_t first = pending_.find_first_not_of(" \n\t\r");
      if (first == std::string::npos) return;  // only blanks so far: wait
      if (pending_[first] == '{') start = std::min(start, first);
    }
    if (start == std::string::npos) {
      // Hold back an end that may be the start of the marker.
      size_t hold = 0;
      for (size_t n = std::min(marker.size() - (marker.empty() ? 0 : 1), pending_.size()); n > 0;
           --n)
        if (marker.substr(0, n) == std::string_view(pending_).substr(pending_.size() - n)) {
          hold = n;
          break;
        }
      content(pending_.size() - hold);
      return;
    }
    content(start);
    in_calls_ = true;
    parsed_end_ = 0;
  } else if (streaming_call_ >= 0 && text.find_first_of("\"\\{}[]") == std::string_view::npos) {
    // Inside an object or array of arguments, text without quotes, backslashes or brackets
    // cannot end it: it is more arguments, handed out without scanning the call again (a long
    // argument would otherwise cost a scan of all of it per piece).
    if (!text.empty()) {
      out.push_back({ChatDelta::kToolArguments, std::string(text), streaming_call_});
      calls_[streaming_call_].arguments_sent += text.size();
    }
    return;
  }
  emit_calls(false, out);
}

void ToolCallParser::emit_calls(bool final, std::vector<ChatDelta>& out) {
  const Scan scan = scan_calls(syntax_, pending_, names_);
  streaming_call_ = -1;
  if (scan.state == ScanState::kBad && calls_.empty()) {
    // Not a call after all: all of it is content, and the search goes on after it.
    if (!pending_.empty()) out.push_back({ChatDelta::kContent, pending_});
    content_seen_ = true;
    pending_.clear();
    in_calls_ = false;
    return;
  }
  for (size_t i = 0; i < scan.calls.size(); ++i) {
    const CallView& c = scan.calls[i];
    const bool streamable = c.name_first && !c.arguments_quoted;
    if (c.name.empty() || (!c.complete && !streamable && !final)) break;
    if (!c.complete && !names_.empty() &&
        std::find(names_.begin(), names_.end(), c.name) == names_.end())
      break;  // not one of the request's functions: no call (content once that is certain)
    if (i >= calls_.size()) {
      // ids are always ember's: unique in the answer whatever the model wrote.
      calls_.push_back({new_id(), c.name, 0});
      out.push_back({ChatDelta::kToolCall, "", static_cast<int>(i), calls_[i].id, c.name});
    }
    CallState& state = calls_[i];
    if (c.arguments.size() > state.arguments_sent) {
      out.push_back({ChatDelta::kToolArguments, c.arguments.substr(state.arguments_sent),
                     static_cast<int>(i)});
      state.arguments_sent = c.arguments.size();
    }
    if (!c.complete) {
      const bool nested = !c.arguments.empty() && (c.arguments[0] == '{' || c.arguments[0] == '[');
      if (scan.state == ScanState::kIncomplete && streamable && nested && c.arguments_open)
        streaming_call_ = static_cast<int>(i);
      break;
    }
  }
  parsed_end_ = scan.end;
  if (!final) return;
  if (scan.state == ScanState::kIncomplete && calls_.empty()) {
    // The answer ended before its first call was complete: the text is content after all.
    out.push_back({ChatDelta::kContent, pending_});
  } else if (scan.state != ScanState::kIncomplete) {        // text after the calls, or a bad one
    const std::string rest = pending_.substr(parsed_end_);  // text after the calls
    if (rest.find_first_not_of(" \n\t\r") != std::string::npos)
      out.push_back({ChatDelta::kContent, rest});
  }
  pending_.clear();
}

void ToolCallParser::finish(std::vector<ChatDelta>& out) {
  if (in_calls_) return emit_calls(true, out);
  if (!pending_.empty()) out.push_back({ChatDelta::kContent, pending_});
  pending_.clear();
}

}  // namespace ember::chat
