#include "model/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "model/speculative.h"

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

// log softmax(logits)[token] and the `top` best tokens with theirs.
TokenLogprob logprob_of(const std::vector<float>& logits, text::TokenId token, int top) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - max_logit);
  const float log_z = max_logit + static_cast<float>(std::log(sum));
  TokenLogprob out{token, logits[token] - log_z, {}};
  std::vector<text::TokenId> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<text::TokenId>(i);
  const size_t k = std::min<size_t>(std::max(top, 0), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                    [&](text::TokenId a, text::TokenId b) { return logits[a] > logits[b]; });
  for (size_t i = 0; i < k; ++i) out.top.emplace_back(ids[i], logits[ids[i]] - log_z);
  return out;
}

}  // namespace

Completion::Completion(const text::Tokenizer& tokenizer, GenerateRequest request)
    : tokenizer_(tokenizer),
      request_(std::move(request)),
      sampler_(request_.sampling),
      decoder_(tokenizer),
      history_(request_.prompt) {
  if (request_.prompt.empty()) throw std::runtime_error("the prompt has no tokens");
  for (const std::string& s : request_.stop)
    if (!s.empty()) stops_.push_back(s);
  result_.prompt_tokens = static_cast<int>(request_.prompt.size());
  result_.finish_reason = "length";
  if (request_.max_tokens <= 0) finished_ = true;
  if (request_.grammar) {
    if (!request_.trie) throw std::logic_error("a grammar needs the vocabulary's TokenTrie");
    matcher_.emplace(*request_.grammar);
  }
}

std::string Completion::hand_out(size_t upto) {
  if (upto <= emitted_) return {};
  std::string piece = result_.text.substr(emitted_, upto - emitted_);
  emitted_ = upto;
  return piece;
}

std::string Completion::step(std::vector<float>& logits) {
  if (finished_) return {};
  // Log-probabilities are those of the model's distribution, before penalties and sampling.
  TokenLogprob lp;
  const bool want_logprobs = request_.top_logprobs >= 0;
  std::vector<float> raw;
  if (want_logprobs) raw = logits;
  if (request_.ignore_eos)
    for (text::TokenId id : {tokenizer_.vocab().eos, tokenizer_.vocab().eot})
      if (id >= 0 && static_cast<size_t>(id) < logits.size())
        logits[id] = -std::numeric_limits<float>::infinity();
  if (matcher_) {  // only what the grammar allows; the end only once the output is complete
    request_.trie->allowed(*matcher_, allowed_);
    if (matcher_->accepting())
      for (text::TokenId id : {tokenizer_.vocab().eos, tokenizer_.vocab().eot})
        if (id >= 0 && static_cast<size_t>(id) < allowed_.size()) allowed_[id] = 1;
    constexpr float kNever = -std::numeric_limits<float>::infinity();
    bool any = false;
    for (size_t id = 0; id < logits.size(); ++id) {
      if (id >= allowed_.size() || !allowed_[id])
        logits[id] = kNever;
      else
        any = true;
    }
    // A grammar no token of this vocabulary can continue (a GBNF class of nothing, say).
    if (!any)
      throw std::runtime_error(
          "no token of the model's vocabulary can continue the grammar after \"" +
          result_.text.substr(result_.text.size() - std::min<size_t>(result_.text.size(), 40)) +
          "\"");
  }
  const text::TokenId next = sampler_.sample(logits, history_);
  if (tokenizer_.vocab().is_end_of_generation(next)) return finish("stop");
  if (matcher_)
    for (char c : tokenizer_.piece(next)) matcher_->advance(static_cast<uint8_t>(c));
  if (want_logprobs) result_.logprobs.push_back(logprob_of(raw, next, request_.top_logprobs));
  history_.push_back(next);
  result_.tokens.push_back(next);
  result_.completion_tokens = static_cast<int>(result_.tokens.size());
  const auto& shown = request_.shown_tokens;
  result_.text += decoder_.push(next, std::find(shown.begin(), shown.end(), next) != shown.end());

  // A stop string ends the text just before it.
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    size_t hit = result_.text.find(s, emitted_ > s.size() ? emitted_ - s.size() : 0);
    if (hit != std::string::npos && hit < cut) {
      cut = hit;
      result_.stop_sequence = s;
    }
  }
  if (cut != std::string::npos) {
    result_.text.resize(cut);
    finished_ = true;
    result_.finish_reason = "stop";
    return hand_out(cut);
  }
  if (matcher_ && !matcher_->can_continue()) return finish("stop");  // the value is complete
  if (static_cast<int>(result_.tokens.size()) >= request_.max_tokens) return finish("length");
  return hand_out(result_.text.size() - stop_prefix_at_end(result_.text, stops_));
}

std::string Completion::finish(const std::string& reason) {
  if (finished_) return {};
  finished_ = true;
  result_.finish_reason = reason;
  result_.text += decoder_.finish();  // an unfinished character at the end
  return hand_out(result_.text.size());
}

GenerateResult generate(Transformer& model, const text::Tokenizer& tokenizer,
                        const GenerateRequest& request,
                        const std::function<bool(const std::string&)>& on_text) {
  Completion completion(tokenizer, request);
  model.reset();
  auto start = std::chrono::steady_clock::now();
  // `rows` holds the logits of the last forward pass's inputs (all of them when it verified
  // guesses): input 0 is the token chosen last, inputs 1.. the guesses of what follows it.
  std::vector<float> rows = model.forward(request.prompt, false);
  const double prompt_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  const size_t n_vocab = static_cast<size_t>(model.n_vocab());
  std::vector<text::TokenId> guesses;
  std::vector<float> logits(n_vocab);
  int base = model.n_past() - 1;  // the position of input 0
  int draft_tokens = 0, accepted_tokens = 0, passes = 0;
  Drafter drafter(request.speculative, request.drafter);
  size_t row = 0;
  while (!completion.finished()) {
    // The next token, chosen from the row whose context is the true one (speculative.h).
    std::copy(rows.begin() + row * n_vocab, rows.begin() + (row + 1) * n_vocab, logits.begin());
    std::string text = completion.step(logits);
    if (!text.empty() && on_text && !on_text(text)) {
      completion.finish("stop");
      break;
    }
    if (completion.finished()) break;
    const text::TokenId chosen = completion.last_token();
    ++row;
    if (row <= guesses.size() && guesses[row - 1] == chosen) {
      ++accepted_tokens;  // the guess was right: its row is the next token's
      continue;
    }
    model.truncate(base + static_cast<int>(row));  // inputs past a wrong guess are not taken
    drafter.outcome(guesses.size(), row - 1);
    if (model.n_past() >= model.n_ctx()) {
      std::string rest = completion.finish("length");
      if (!rest.empty() && on_text) on_text(rest);
      break;
    }
    const int room = std::min(request.max_tokens - completion.result().completion_tokens - 1,
                              model.n_ctx() - model.n_past() - 1);
    guesses = drafter.guess(completion.history(), room);
    std::vector<int32_t> inputs = {chosen};
    inputs.insert(inputs.end(), guesses.begin(), guesses.end());
    base = model.n_past();
    rows = model.forward(inputs, !guesses.empty());
    draft_tokens += static_cast<int>(guesses.size());
    ++passes;
    row = 0;
  }
  GenerateResult result = std::move(completion.result());
  result.prompt_seconds = prompt_seconds;
  result.generation_seconds = seconds_since(start);
  result.draft_tokens = draft_tokens;
  result.accepted_tokens = accepted_tokens;
  result.forward_passes = passes;
  result.draft_error = drafter.error();
  return result;
}

}  // namespace ember::model
