#include "model/generate.h"

#include <chrono>

namespace ember::model {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Length of the longest suffix of `text` that is a proper prefix of some stop string: that much
// must be held back, since the next token may complete the stop string.
size_t stop_prefix_at_end(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t n = std::min(s.size() - 1, text.size()); n > hold; --n)
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return hold;
}

}  // namespace

GenerateResult generate(Transformer& model, const Tokenizer& tokenizer,
                        const GenerateRequest& request,
                        const std::function<bool(const std::string&)>& on_text) {
  GenerateResult result;
  result.prompt_tokens = static_cast<int>(request.prompt.size());
  if (request.prompt.empty()) throw std::runtime_error("the prompt has no tokens");
  Sampler sampler(request.sampling);
  model.reset();

  auto start = std::chrono::steady_clock::now();
  std::vector<float> logits = model.forward(request.prompt, false);
  result.prompt_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();

  std::vector<TokenId> history = request.prompt;
  StreamDecoder decoder(tokenizer);
  size_t emitted = 0;  // bytes of result.text handed out
  result.finish_reason = "length";
  std::vector<std::string> stops;
  for (const std::string& s : request.stop)
    if (!s.empty()) stops.push_back(s);

  bool cut_by_stop_string = false;
  auto hand_out = [&](size_t upto) {
    if (upto <= emitted) return true;
    std::string piece = result.text.substr(emitted, upto - emitted);
    emitted = upto;
    return on_text ? on_text(piece) : true;
  };

  for (int i = 0; i < request.max_tokens; ++i) {
    TokenId next = sampler.sample(logits, history);
    if (tokenizer.vocab().is_end_of_generation(next)) {
      result.finish_reason = "stop";
      break;
    }
    history.push_back(next);
    result.tokens.push_back(next);
    result.text += decoder.push(next);

    // A stop string ends the text just before it.
    size_t cut = std::string::npos;
    for (const std::string& s : stops) {
      size_t hit = result.text.find(s, emitted > s.size() ? emitted - s.size() : 0);
      if (hit != std::string::npos) cut = std::min(cut, hit);
    }
    if (cut != std::string::npos) {
      cut_by_stop_string = true;
      result.text.resize(cut);
      hand_out(cut);
      result.finish_reason = "stop";
      break;
    }
    if (!hand_out(result.text.size() - stop_prefix_at_end(result.text, stops))) {
      result.finish_reason = "stop";
      break;
    }
    if (i + 1 == request.max_tokens || model.n_past() >= model.n_ctx()) break;
    logits = model.forward({next}, false);
  }
  if (cut_by_stop_string == false)
    result.text += decoder.finish();  // an unfinished character at the end
  hand_out(result.text.size());
  result.completion_tokens = static_cast<int>(result.tokens.size());
  result.generation_seconds = seconds_since(start);
  return result;
}

}  // namespace ember::model
