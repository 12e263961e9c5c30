// Chat prompts: the model's own tokenizer.chat_template (a Jinja template), or a built-in
// template for its family when the file has none.
#pragma once

#include <string>
#include <vector>

#include "gguf/reader.h"
#include "model/chat/jinja.h"
#include "model/text/vocab.h"

namespace ember::chat {

class ChatTemplate {
 public:
  // The template of a model file: its own, else the fallback its vocabulary and architecture
  // point to. Throws jinja::Error when the model's template does not parse.
  // `source`, when not empty, replaces the file's template (llama-server's --chat-template-file).
  static ChatTemplate for_model(const gguf::Metadata& metadata, const text::Vocab& vocab,
                                const std::string& source = "");
  // A built-in template: "chatml", "llama3", "gemma", "phi3" or "mistral"; throws for others.
  static ChatTemplate builtin(const std::string& name, std::string bos_token = "",
                              std::string eos_token = "");
  static std::vector<std::string> builtin_names();
  static const std::string& builtin_source(const std::string& name);

  ChatTemplate(std::string source, std::string name, std::string bos_token, std::string eos_token);

  // messages: a list of {"role", "content" (string or list of parts), ...} dicts. Extra
  // variables (tools, ...) come in `extra` (a dict, may be undefined).
  std::string render(const jinja::Value& messages, bool add_generation_prompt,
                     const jinja::Value& extra = jinja::Value()) const;

  // Assistant prefill: renders `messages`, whose last one is the start of an assistant answer,
  // so that the prompt ends inside that message (no end-of-turn after it, no generation
  // prompt) and generation continues it, as llama.cpp and Ollama do. Follows transformers'
  // `continue_final_message`: render without a generation prompt and cut after the last
  // occurrence of the message's text. A template that does not print the text (or an empty
  // message) falls back to llama.cpp's way: the earlier messages with a generation prompt,
  // then the text. The text of a content-parts message is its text parts joined.
  std::string render_continuing(const jinja::Value& messages,
                                const jinja::Value& extra = jinja::Value()) const;

  // "model" for the file's own template, "custom" for one given to for_model
  const std::string& name() const { return name_; }
  const std::string& source() const { return source_; }

 private:
  std::string source_, name_, bos_token_, eos_token_;
  jinja::Template template_;
};

// A {"role", "content"} message as templates take them.
jinja::Value chat_message(const std::string& role, const std::string& content);

}  // namespace ember::chat
