#include "model/draft_model.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/cpu/kernels.h"

namespace ember::model {

void check_draft_vocabulary(const text::Vocab& target, const text::Vocab& draft) {
  auto fail = [](const std::string& what) {
    throw std::runtime_error("the draft model cannot guess for this model: " + what);
  };
  if (target.model != draft.model) fail("their tokenizers are of different kinds");
  constexpr long kMaxSizeDifference = 128;
  const long a = static_cast<long>(target.size()), b = static_cast<long>(draft.size());
  if (std::labs(a - b) > kMaxSizeDifference)
    fail("their vocabularies hold " + std::to_string(a) + " and " + std::to_string(b) + " tokens");
  if (target.bos != draft.bos || target.eos != draft.eos || target.eot != draft.eot)
    fail("their begin or end tokens differ");
  const size_t n = std::min(target.size(), draft.size());
  for (size_t i = 0; i < n; ++i)
    if (target.pieces[i] != draft.pieces[i])
      fail("token " + std::to_string(i) + " is \"" + target.pieces[i] + "\" in one and \"" +
           draft.pieces[i] + "\" in the other");
}

DraftModel::DraftModel(Transformer& model, const text::Vocab& vocab, int seq, int vocab_limit,
                       int max_read)
    : model_(model),
      vocab_(vocab),
      seq_(seq),
      vocab_limit_(std::min(vocab_limit, model.n_vocab())),
      max_read_(max_read) {}

text::TokenId DraftModel::run(const std::vector<text::TokenId>& tokens) {
  std::vector<float> logits;
  for (size_t first = 0; first < tokens.size(); first += Transformer::kForwardBatch) {
    const size_t last = std::min(tokens.size(), first + Transformer::kForwardBatch);
    Batch batch;
    for (size_t i = first; i < last; ++i)
      batch.add(tokens[i], static_cast<int32_t>(cached_.size() + i - first), seq_,
                i + 1 == tokens.size());
    // `cached_` grows only once a pass succeeded: after a failure the next call re-reads.
    logits = model_.decode(batch);
    cached_.insert(cached_.end(), tokens.begin() + first, tokens.begin() + last);
    tokens_read_ += last - first;
  }
  return static_cast<text::TokenId>(cpu::vector_ops().argmax(logits.data(), vocab_limit_));
}

std::vector<text::TokenId> DraftModel::guess(const std::vector<text::TokenId>& context, int n) {
  if (context.empty()) return {};
  n = std::min(n, model_.n_ctx() - static_cast<int>(context.size()));
  if (n <= 0) return {};
  // Keep the common prefix, but re-run at least the last token: its logits give the first guess.
  size_t keep =
      std::mismatch(cached_.begin(), cached_.end(), context.begin(), context.end()).first -
      cached_.begin();
  keep = std::min(keep, context.size() - 1);
  cached_.resize(keep);
  const auto from = context.begin() + static_cast<std::ptrdiff_t>(keep);
  if (std::any_of(from, context.end(), [&](text::TokenId t) { return t >= model_.n_vocab(); }))
    return {};
  if (max_read_ > 0 && context.end() - from > max_read_) {  // catch up, guess later
    (void)run({from, from + max_read_});
    return {};
  }
  std::vector<text::TokenId> out;
  text::TokenId next = run({from, context.end()});
  while (!vocab_.is_end_of_generation(next)) {
    out.push_back(next);
    if (static_cast<int>(out.size()) == n) break;
    next = run({next});
  }
  return out;
}

namespace {

text::Vocab checked(text::Vocab draft, const text::Vocab& target) {
  check_draft_vocabulary(target, draft);
  return draft;
}

}  // namespace

LoadedDraft::LoadedDraft(const std::string& path, const text::Vocab& target_vocab,
                         const BackendSpec& spec, const Backends& target_backends,
                         const Transformer& target, CacheType cache, int n_seq)
    : files(gguf::ModelFiles::open(path)),
      vocab(checked(text::Vocab::from_gguf(files.metadata()), target_vocab)),
      backends(make_draft_backends(spec, target_backends, target.device_bytes())),
      transformer(files, *backends.main,
                  HyperParams::from_gguf(files.metadata()).context(target.n_ctx()), cache, n_seq,
                  backends.placement) {}

}  // namespace ember::model
