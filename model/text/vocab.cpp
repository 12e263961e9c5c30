#include "model/text/vocab.h"

#include <stdexcept>

namespace ember::text {
namespace {

std::runtime_error bad(const std::string& what) {
  return std::runtime_error("tokenizer metadata: " + what);
}

}  // namespace

Vocab Vocab::from_gguf(const gguf::Metadata& m) {
  Vocab v;
  std::string model(m.get_string("tokenizer.ggml.model").value_or(""));
  if (model == "llama") {
    v.model = TokenizerModel::kSentencePiece;
    v.bos = 1, v.eos = 2, v.unk = 0;  // SentencePiece defaults, overridden by the keys below
    v.add_bos = true;
    v.add_space_prefix = true;
  } else if (model == "gpt2") {
    v.model = TokenizerModel::kBytePairs;
  } else {
    throw bad(model.empty()
                  ? "tokenizer.ggml.model is missing"
                  : "tokenizer model '" + model + "' is not supported (llama and gpt2 are)");
  }
  v.pre = std::string(m.get_string("tokenizer.ggml.pre").value_or("default"));

  const gguf::Value* tokens = m.find("tokenizer.ggml.tokens");
  if (!tokens || !tokens->is_array() || tokens->element_type() != gguf::ValueType::STRING)
    throw bad("tokenizer.ggml.tokens is missing or not a list of strings");
  v.pieces.reserve(tokens->size());
  v.ids.reserve(tokens->size());
  for (uint64_t i = 0; i < tokens->size(); ++i) {
    v.pieces.emplace_back(tokens->string_at(i));
    v.ids.emplace(v.pieces.back(), static_cast<TokenId>(i));  // the first of duplicates wins
  }
  const size_t n = v.pieces.size();

  if (const gguf::Value* scores = m.find("tokenizer.ggml.scores")) {
    if (!scores->is_array() || scores->size() != n)
      throw bad("tokenizer.ggml.scores has the wrong length");
    v.scores = scores->numbers<float>();
  }
  v.types.assign(n, TokenType::kNormal);
  if (const gguf::Value* types = m.find("tokenizer.ggml.token_type")) {
    if (!types->is_array() || types->size() != n)
      throw bad("tokenizer.ggml.token_type has the wrong length");
    for (size_t i = 0; i < n; ++i) v.types[i] = static_cast<TokenType>(types->int_at(i));
  }
  if (v.model == TokenizerModel::kSentencePiece && v.scores.empty())
    throw bad("a SentencePiece vocabulary needs tokenizer.ggml.scores");
  if (v.model == TokenizerModel::kBytePairs) {
    const gguf::Value* merges = m.find("tokenizer.ggml.merges");
    if (!merges || !merges->is_array() || merges->element_type() != gguf::ValueType::STRING)
      throw bad("a BPE vocabulary needs tokenizer.ggml.merges");
    v.merge_ranks.reserve(merges->size());
    for (uint64_t i = 0; i < merges->size(); ++i)
      v.merge_ranks.emplace(std::string(merges->string_at(i)), static_cast<int32_t>(i));
  }

  auto id_key = [&](const char* key, TokenId& out) {
    if (auto id = m.get_int(key)) {
      if (*id < -1 || *id >= static_cast<int64_t>(n))
        throw bad(std::string(key) + " = " + std::to_string(*id) + " is outside the vocabulary");
      out = static_cast<TokenId>(*id);
    }
  };
  id_key("tokenizer.ggml.bos_token_id", v.bos);
  id_key("tokenizer.ggml.eos_token_id", v.eos);
  id_key("tokenizer.ggml.eot_token_id", v.eot);
  id_key("tokenizer.ggml.unknown_token_id", v.unk);
  id_key("tokenizer.ggml.padding_token_id", v.pad);
  v.add_bos = m.get_bool("tokenizer.ggml.add_bos_token").value_or(v.add_bos);
  v.add_eos = m.get_bool("tokenizer.ggml.add_eos_token").value_or(v.add_eos);
  v.add_space_prefix = m.get_bool("tokenizer.ggml.add_space_prefix").value_or(v.add_space_prefix);
  if (v.unk >= static_cast<TokenId>(n)) v.unk = -1;
  // Chat models end a turn with a token of their own; files rarely name it, so look for the
  // usual ones (as llama.cpp does) when tokenizer.ggml.eot_token_id is absent.
  if (v.eot < 0) {
    for (const char* piece : {"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>",
                              "<|endoftext|>", "<|END_OF_TURN_TOKEN|>"}) {
      TokenId id = v.find(piece);
      if (id >= 0 && id != v.eos && v.type(id) != TokenType::kNormal) {
        v.eot = id;
        break;
      }
    }
  }
  return v;
}

}  // namespace ember::text
