// Reasoning blocks: the <think>…</think> text that Qwen 3, QwQ, DeepSeek-R1 distills and other
// reasoning models write before their answer, split from the answer as it streams (OpenAI-style
// servers return it as `reasoning_content`). A block counts only at the start of the answer (after
// blanks), or from the very start when the prompt already opened it (templates whose generation
// prompt ends with "<think>\n"). Blanks around the reasoning and before the answer are dropped.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/chat/tool_calls.h"

namespace ember::chat {

class ReasoningSplitter {
 public:
  // open: the prompt ends inside a reasoning block.
  explicit ReasoningSplitter(bool open = false) : in_reasoning_(open), decided_(open) {}

  // Appends kReasoning and kContent deltas; text that may be part of a tag is held back.
  void push(std::string_view text, std::vector<ChatDelta>& out);
  void finish(std::vector<ChatDelta>& out);

  // Whether `prompt` (a rendered chat prompt) ends inside an opened reasoning block.
  static bool opened_by(std::string_view prompt);

 private:
  void emit(ChatDelta::Kind kind, std::string text, std::vector<ChatDelta>& out);

  bool in_reasoning_;
  bool decided_;                    // whether the answer starts with a block is known
  bool reasoning_started_ = false;  // non-blank reasoning went out (blanks before it are dropped)
  bool content_started_ = false;    // likewise for the answer
  bool block_seen_ = false;         // a block was opened (the answer's leading blanks go)
  std::string held_;  // text that may be part of a tag, or blanks that may end a block
};

}  // namespace ember::chat
