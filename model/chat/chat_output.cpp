#include "model/chat/chat_output.h"

namespace ember::chat {

void ChatOutputParser::to_tools(std::vector<ChatDelta>& deltas, bool final) {
  if (!options_.tools) return;
  std::vector<ChatDelta> out;
  for (ChatDelta& d : deltas) {
    if (d.kind == ChatDelta::kContent)
      tools_.push(d.text, out);
    else
      out.push_back(std::move(d));
  }
  if (final) tools_.finish(out);
  deltas = std::move(out);
}

std::vector<ChatDelta> ChatOutputParser::push(std::string_view text) {
  std::vector<ChatDelta> deltas;
  if (options_.reasoning)
    reasoning_.push(text, deltas);
  else if (!text.empty())
    deltas.push_back({ChatDelta::kContent, std::string(text)});
  to_tools(deltas, false);
  return deltas;
}

std::vector<ChatDelta> ChatOutputParser::finish() {
  std::vector<ChatDelta> deltas;
  if (options_.reasoning) reasoning_.finish(deltas);
  to_tools(deltas, true);
  return deltas;
}

}  // namespace ember::chat
