// A chat answer as it streams, split into reasoning, content and tool calls: the reasoning block
// first (reasoning.h), then the answer's tool calls in the model's syntax (tool_calls.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/chat/reasoning.h"
#include "model/chat/tool_calls.h"

namespace ember::chat {

struct ChatOutputOptions {
  bool reasoning = false;       // split off a <think> block
  bool reasoning_open = false;  // the prompt opened it
  bool tools = false;           // parse tool calls
  ToolSyntax syntax = ToolSyntax::kGeneric;
  std::vector<std::string> tool_names;  // the request's functions (calls of others are content)
};

class ChatOutputParser {
 public:
  explicit ChatOutputParser(const ChatOutputOptions& options)
      : options_(options),
        reasoning_(options.reasoning_open),
        tools_(options.syntax, options.tool_names) {}

  // The deltas that are final once `text` is added (possibly none).
  std::vector<ChatDelta> push(std::string_view text);
  std::vector<ChatDelta> finish();
  int tool_calls() const { return tools_.calls(); }

 private:
  void to_tools(std::vector<ChatDelta>& deltas, bool final);

  ChatOutputOptions options_;
  ReasoningSplitter reasoning_;
  ToolCallParser tools_;
};

}  // namespace ember::chat
