#include "model/chat/reasoning.h"

namespace ember::chat {
namespace {

constexpr std::string_view kOpen = "<think>", kClose = "</think>";

bool blank(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

// The length of the longest end of `text` that is a proper start of `tag`.
size_t partial_tag_at_end(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(tag.size() - 1, text.size()); n > 0; --n)
    if (tag.substr(0, n) == text.substr(text.size() - n)) return n;
  return 0;
}

}  // namespace

bool ReasoningSplitter::opened_by(std::string_view prompt) {
  while (!prompt.empty() && blank(prompt.back())) prompt.remove_suffix(1);
  return prompt.size() >= kOpen.size() && prompt.substr(prompt.size() - kOpen.size()) == kOpen;
}

void ReasoningSplitter::emit(ChatDelta::Kind kind, std::string text, std::vector<ChatDelta>& out) {
  if (text.empty()) return;
  bool& started = kind == ChatDelta::kReasoning ? reasoning_started_ : content_started_;
  if (!started &&
      (kind == ChatDelta::kReasoning ||
       block_seen_)) {  // blanks before the reasoning, and between it and the answer, are dropped
    size_t first = 0;
    while (first < text.size() && blank(text[first])) ++first;
    text.erase(0, first);
    if (text.empty()) return;
    started = true;
  }
  if (!out.empty() && out.back().kind == kind)
    out.back().text += text;
  else
    out.push_back({kind, std::move(text)});
}

void ReasoningSplitter::push(std::string_view piece, std::vector<ChatDelta>& out) {
  std::string text = std::move(held_) + std::string(piece);
  held_.clear();
  while (!text.empty()) {
    if (!decided_) {
      size_t first = 0;
      while (first < text.size() && blank(text[first])) ++first;
      const std::string_view rest = std::string_view(text).substr(first);
      if (rest.substr(0, kOpen.size()) == kOpen) {
        in_reasoning_ = decided_ = block_seen_ = true;
        text.erase(0, first + kOpen.size());
        continue;
      }
      if (kOpen.substr(0, rest.size()) == rest) {  // blanks, or the tag's first characters
        held_ = std::move(text);
        return;
      }
      decided_ = true;
    }
    if (in_reasoning_) block_seen_ = true;
    if (!in_reasoning_) {
      emit(ChatDelta::kContent, std::move(text), out);
      return;
    }
    const size_t close = text.find(kClose);
    if (close != std::string::npos) {
      std::string reasoning = text.substr(0, close);
      while (!reasoning.empty() && blank(reasoning.back())) reasoning.pop_back();
      emit(ChatDelta::kReasoning, std::move(reasoning), out);
      in_reasoning_ = false;
      text.erase(0, close + kClose.size());
      continue;
    }
    // Hold back what may be the start of the closing tag and the blanks before it (dropped
    // if the block ends there).
    size_t keep = text.size() - partial_tag_at_end(text, kClose);
    while (keep > 0 && blank(text[keep - 1])) --keep;
    held_ = text.substr(keep);
    text.resize(keep);
    emit(ChatDelta::kReasoning, std::move(text), out);
    return;
  }
}

void ReasoningSplitter::finish(std::vector<ChatDelta>& out) {
  std::string rest = std::move(held_);
  held_.clear();
  if (rest.empty()) return;
  // An unfinished block's text is reasoning; undecided text (blanks, "<thi") is content.
  if (in_reasoning_) {
    while (!rest.empty() && blank(rest.back())) rest.pop_back();
    emit(ChatDelta::kReasoning, std::move(rest), out);
  } else {
    emit(ChatDelta::kContent, std::move(rest), out);
  }
}

}  // namespace ember::chat
