// libFuzzer target for reading a chat answer (model output is untrusted input): the first byte
// picks the tool-call syntax and the reasoning options, the rest is the answer, fed in pieces cut
// at NUL bytes. Whatever the text, the parser must hand every call a name, index its calls from 0
// and never crash or hang.
#include <cstdlib>
#include <string_view>

#include "model/chat/chat_output.h"

using ember::chat::ChatDelta;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ember::chat::ChatOutputOptions options;
  options.syntax = static_cast<ember::chat::ToolSyntax>(data[0] % 6);
  options.tools = data[0] & 8;
  options.reasoning = data[0] & 16;
  options.reasoning_open = data[0] & 32;
  ember::chat::ChatOutputParser parser(options);
  int calls = 0;
  auto check = [&](const std::vector<ChatDelta>& deltas) {
    for (const ChatDelta& d : deltas) {
      if (d.kind == ChatDelta::kToolCall && (d.name.empty() || d.index != calls++)) std::abort();
      if (d.kind == ChatDelta::kToolArguments && d.index >= calls) std::abort();
    }
  };
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  while (!rest.empty()) {
    const size_t cut = rest.find('\0');
    check(parser.push(rest.substr(0, cut)));
    rest = cut == std::string_view::npos ? std::string_view() : rest.substr(cut + 1);
  }
  check(parser.finish());
  return 0;
}
