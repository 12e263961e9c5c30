// `ember template`: renders a chat template, for checking prompts and for the conformance tests.
//   ember template --model FILE [--messages M.json] [--add-generation-prompt] [--print-source]
//   ember template --builtin NAME [...]            one of the built-in fallbacks
//   ember template --template-file T.jinja --context C.json     any template, any variables
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gguf/model_files.h"
#include "model/chat/chat_template.h"
#include "model/chat/jinja_json.h"
#include "server/cli/args.h"
#include "server/cli/commands.h"

namespace ember::cli {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot read");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

chat::jinja::Value read_json(const std::string& path) {
  try {
    return chat::jinja::from_json(nlohmann::ordered_json::parse(read_file(path)));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
}

void print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

int run_template(const std::vector<std::string>& argv) {
  Args args(argv, {"model", "builtin", "template-file", "context", "messages"},
            {"add-generation-prompt", "print-source"});
  int sources = args.has("model") + args.has("builtin") + args.has("template-file");
  if (sources != 1) throw UsageError("give exactly one of --model, --builtin and --template-file");

  if (auto path = args.get("template-file")) {
    chat::jinja::Template t(read_file(*path));
    chat::jinja::Value context =
        args.has("context") ? read_json(*args.get("context")) : chat::jinja::Value::object();
    print(t.render(context));
    return 0;
  }
  std::optional<chat::ChatTemplate> chat;
  if (auto path = args.get("model")) {
    gguf::ModelFiles file = gguf::ModelFiles::open(*path);
    chat = chat::ChatTemplate::for_model(file.metadata(), text::Vocab::from_gguf(file.metadata()));
  } else {
    chat = chat::ChatTemplate::builtin(*args.get("builtin"));
  }
  if (args.has("print-source")) {
    print(chat->source());
    return 0;
  }
  chat::jinja::Value messages = args.has("messages") ? read_json(*args.get("messages"))
                                                     : chat::jinja::Value(chat::jinja::Array{});
  chat::jinja::Value extra =
      args.has("context") ? read_json(*args.get("context")) : chat::jinja::Value();
  print(chat->render(messages, args.has("add-generation-prompt"), extra));
  return 0;
}

}  // namespace ember::cli
