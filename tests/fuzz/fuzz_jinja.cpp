// libFuzzer target for the Jinja interpreter: any bytes as a template, rendered against a small
// chat context. Templates come from model files, so parsing and rendering must fail cleanly
// (chat::jinja::Error), never crash, hang or exhaust memory.
#include <string>

#include "model/chat/jinja.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ember::chat::jinja::Value;
  std::string source(reinterpret_cast<const char*>(data), size);
  try {
    ember::chat::jinja::Template t(source);
    Value message = Value::object();
    message.obj().set("role", Value("user"));
    message.obj().set("content", Value("Hi"));
    Value context = Value::object();
    context.obj().set("messages", Value(ember::chat::jinja::Array{message, message}));
    context.obj().set("add_generation_prompt", Value(true));
    context.obj().set("bos_token", Value("<s>"));
    // A smaller work budget than the server's keeps every input well inside libFuzzer's timeout
    // under the sanitizers; what is tested is that the budget is enforced, not its size.
    (void)t.render(context, ember::chat::jinja::RenderLimits{.max_work = 200'000});
  } catch (const ember::chat::jinja::Error&) {
  }
  return 0;
}
