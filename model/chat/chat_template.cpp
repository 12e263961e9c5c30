#include "model/chat/chat_template.h"

#include <map>
#include <string_view>

namespace ember::chat {
namespace {

// Renders a message's content whether it is a string or a list of {"type": "text", "text"} parts.
#define EMBER_CONTENT_MACRO                                                        \
  "{%- macro content_text(content) -%}{%- if content is string -%}{{ content }}"   \
  "{%- elif content is iterable -%}{%- for part in content -%}"                    \
  "{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}{%- endfor -%}" \
  "{%- endif -%}{%- endmacro -%}\n"

const std::map<std::string, std::string>& builtins() {
  static const std::map<std::string, std::string> templates = {
      {"chatml", EMBER_CONTENT_MACRO
       "{%- for message in messages -%}"
       "{{ '<|im_start|>' + message['role'] + '\\n' + content_text(message['content']) + "
       "'<|im_end|>\\n' }}"
       "{%- endfor -%}"
       "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"},
      {"llama3", EMBER_CONTENT_MACRO
       "{{- bos_token -}}"
       "{%- for message in messages -%}"
       "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
       "content_text(message['content']) | trim + '<|eot_id|>' }}"
       "{%- endfor -%}"
       "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' "
       "}}{%- endif -%}"},
      {"gemma", EMBER_CONTENT_MACRO
       "{{- bos_token -}}"
       "{%- if messages and messages[0]['role'] == 'system' -%}"
       "{%- set first_prefix = content_text(messages[0]['content']) + '\\n\\n' -%}"
       "{%- set turns = messages[1:] -%}"
       "{%- else -%}{%- set first_prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
       "{%- for message in turns -%}"
       "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
       "{{ '<start_of_turn>' + role + '\\n' + (first_prefix if loop.first else '') + "
       "content_text(message['content']) | trim + '<end_of_turn>\\n' }}"
       "{%- endfor -%}"
       "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"},
      {"phi3", EMBER_CONTENT_MACRO
       "{%- for message in messages -%}"
       "{{ '<|' + message['role'] + '|>\\n' + content_text(message['content']) + '<|end|>\\n' }}"
       "{%- endfor -%}"
       "{%- if add_generation_prompt -%}{{ '<|assistant|>\\n' }}{%- else -%}{{ eos_token }}{%- "
       "endif -%}"},
      {"mistral", EMBER_CONTENT_MACRO
       "{{- bos_token -}}"
       "{%- if messages and messages[0]['role'] == 'system' -%}"
       "{%- set system = content_text(messages[0]['content']) + '\\n\\n' -%}{%- set turns = "
       "messages[1:] -%}"
       "{%- else -%}{%- set system = '' -%}{%- set turns = messages -%}{%- endif -%}"
       "{%- for message in turns -%}"
       "{%- if message['role'] == 'user' -%}"
       "{{ '[INST] ' + (system if loop.first else '') + content_text(message['content']) + ' "
       "[/INST]' }}"
       "{%- elif message['role'] == 'assistant' -%}{{ content_text(message['content']) + eos_token "
       "}}"
       "{%- endif -%}{%- endfor -%}"},
  };
  return templates;
}

std::string piece_or_empty(const text::Vocab& vocab, text::TokenId id) {
  return id >= 0 && id < static_cast<text::TokenId>(vocab.size()) ? vocab.pieces[id] : "";
}

// The built-in template a model without one most likely expects, from its special tokens first
// (they name the format), then its architecture.
std::string guess_builtin(const gguf::Metadata& metadata, const text::Vocab& vocab) {
  auto has = [&](const char* piece) { return vocab.find(piece) >= 0; };
  if (has("<|im_start|>")) return "chatml";
  if (has("<start_of_turn>")) return "gemma";
  if (has("<|start_header_id|>")) return "llama3";
  if (has("<|assistant|>") && has("<|end|>")) return "phi3";
  if (has("[INST]")) return "mistral";
  std::string arch(metadata.get_string("general.architecture").value_or(""));
  if (arch.rfind("gemma", 0) == 0) return "gemma";
  if (arch.rfind("phi3", 0) == 0) return "phi3";
  return "chatml";
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source, std::string name, std::string bos_token,
                           std::string eos_token)
    : source_(std::move(source)),
      name_(std::move(name)),
      bos_token_(std::move(bos_token)),
      eos_token_(std::move(eos_token)),
      template_(source_) {}

ChatTemplate ChatTemplate::for_model(const gguf::Metadata& metadata, const text::Vocab& vocab,
                                     const std::string& source) {
  std::string bos = piece_or_empty(vocab, vocab.bos), eos = piece_or_empty(vocab, vocab.eos);
  if (!source.empty()) return ChatTemplate(source, "custom", bos, eos);
  if (auto own = metadata.get_string("tokenizer.chat_template"); own && !own->empty())
    return ChatTemplate(std::string(*own), "model", bos, eos);
  return builtin(guess_builtin(metadata, vocab), bos, eos);
}

ChatTemplate ChatTemplate::builtin(const std::string& name, std::string bos_token,
                                   std::string eos_token) {
  return ChatTemplate(builtin_source(name), name, std::move(bos_token), std::move(eos_token));
}

const std::string& ChatTemplate::builtin_source(const std::string& name) {
  auto it = builtins().find(name);
  if (it == builtins().end()) {
    std::string names;
    for (const std::string& n : builtin_names()) names += (names.empty() ? "" : ", ") + n;
    throw jinja::Error("no built-in chat template '" + name + "' (there are " + names + ")");
  }
  return it->second;
}

std::vector<std::string> ChatTemplate::builtin_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : builtins()) names.push_back(name);
  return names;
}

std::string ChatTemplate::render(const jinja::Value& messages, bool add_generation_prompt,
                                 const jinja::Value& extra) const {
  jinja::Value context = jinja::Value::object();
  context.obj().set("bos_token", jinja::Value(bos_token_));
  context.obj().set("eos_token", jinja::Value(eos_token_));
  if (extra.is_object())
    for (const auto& [k, v] : extra.obj().items) context.obj().set(k, v);
  context.obj().set("messages", messages);
  context.obj().set("add_generation_prompt", jinja::Value(add_generation_prompt));
  return template_.render(context);
}

namespace {

// Python's str.strip() for the ASCII whitespace chat messages end with.
std::string_view strip(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  const size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

std::string message_text(const jinja::Value& message) {
  const jinja::Value content = message.attr("content");
  if (content.is_string()) return content.as_string();
  std::string text;
  if (content.is_array())
    for (const jinja::Value& part : content.array())
      if (part.attr("text").is_string()) text += part.attr("text").as_string();
  return text;
}

}  // namespace

std::string ChatTemplate::render_continuing(const jinja::Value& messages,
                                            const jinja::Value& extra) const {
  if (!messages.is_array() || messages.array().empty()) return render(messages, true, extra);
  const std::string text = message_text(messages.array().back());
  const std::string_view core = strip(text);
  if (!core.empty()) {
    const std::string rendered = render(messages, false, extra);
    const size_t at = rendered.rfind(core);
    if (at != std::string::npos) {
      // Keep the message's trailing spaces when the template kept them too.
      const std::string_view tail = std::string_view(text).substr(text.find(core));
      const bool kept = std::string_view(rendered).substr(at, tail.size()) == tail;
      return rendered.substr(0, at + (kept ? tail.size() : core.size()));
    }
  }
  jinja::Value earlier =
      jinja::Value(jinja::Array(messages.array().begin(), messages.array().end() - 1));
  return render(earlier, true, extra) + text;
}

jinja::Value chat_message(const std::string& role, const std::string& content) {
  jinja::Value m = jinja::Value::object();
  m.obj().set("role", jinja::Value(role));
  m.obj().set("content", jinja::Value(content));
  return m;
}

}  // namespace ember::chat
