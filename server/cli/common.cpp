// Helpers shared by the ember subcommands (declared in commands.h).
#include <cstdio>
#include <sstream>
#include <thread>

#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {

std::vector<int32_t> parse_ids(const std::string& list) {
  std::vector<int32_t> ids;
  std::stringstream s(list);
  for (std::string item; std::getline(s, item, ',');) {
    if (item.empty()) continue;
    try {
      ids.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw UsageError("token ids must be integers separated by commas, not '" + item + "'");
    }
  }
  return ids;
}

int default_threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::vector<text::TokenId> encode_prompt(const text::Tokenizer& tokenizer, const std::string& text,
                                         bool special) {
  // Chat templates often write the BOS token themselves; add it only when the text lacks it.
  const text::Vocab& v = tokenizer.vocab();
  bool has_bos = special && v.bos >= 0 && text.rfind(v.pieces[v.bos], 0) == 0;
  return tokenizer.encode(text, !has_bos, special);
}

chat::jinja::Value chat_message(const std::string& role, const std::string& content) {
  chat::jinja::Value m = chat::jinja::Value::object();
  m.obj().set("role", chat::jinja::Value(role));
  m.obj().set("content", chat::jinja::Value(content));
  return m;
}

bool print_piece(const std::string& piece) {
  std::fwrite(piece.data(), 1, piece.size(), stdout);
  std::fflush(stdout);
  return true;
}

std::vector<std::pair<std::string, float>> parse_lora_specs(const std::vector<std::string>& specs) {
  std::vector<std::pair<std::string, float>> out;
  for (const std::string& spec : specs) {
    try {
      out.push_back(model::parse_lora_spec(spec));
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--lora ") + e.what());
    }
  }
  return out;
}

void attach_loras(model::Transformer& transformer, const gguf::ModelFiles& files,
                  const std::vector<std::string>& specs) {
  for (const auto& [file, scale] : parse_lora_specs(specs))
    transformer.add_lora(model::LoraAdapter::open(file, files, transformer.hparams()), scale);
}

}  // namespace ember::cli
