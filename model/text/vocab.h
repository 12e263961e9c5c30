// A model's vocabulary, read from the GGUF keys tokenizer.ggml.*: the pieces with their scores
// and types, the BPE merges, the special token ids and the encoding flags.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "gguf/reader.h"

namespace ember::text {

using TokenId = int32_t;

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, <|im_start|>: matched in text only when the caller asks for it
  kUserDefined = 4,  // added tokens: always matched in text, printed as written
  kUnused = 5,
  kByte = 6,  // <0x0A>: byte fallback of SentencePiece vocabularies
};

enum class TokenizerModel {
  kSentencePiece,  // tokenizer.ggml.model = "llama": score-ordered merges over characters
  kBytePairs,      // "gpt2": rank-ordered merges over byte-encoded characters
};

struct Vocab {
  TokenizerModel model = TokenizerModel::kSentencePiece;
  std::string pre = "default";  // tokenizer.ggml.pre: which pre-tokenizer splits the text
  std::vector<std::string> pieces;
  std::vector<float> scores;  // empty for BPE vocabularies
  std::vector<TokenType> types;
  std::unordered_map<std::string, TokenId> ids;  // piece → id
  // BPE merges: "left right" (as the file spells them) → rank, lower merges first.
  std::unordered_map<std::string, int32_t> merge_ranks;

  TokenId bos = -1, eos = -1, eot = -1, unk = -1, pad = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = false;  // SentencePiece: a space is put before the text

  // Throws std::runtime_error naming the key when the metadata is missing or inconsistent.
  static Vocab from_gguf(const gguf::Metadata& metadata);

  size_t size() const { return pieces.size(); }
  TokenId find(const std::string& piece) const {
    auto it = ids.find(piece);
    return it == ids.end() ? -1 : it->second;
  }
  TokenType type(TokenId id) const { return types[static_cast<size_t>(id)]; }
  bool is_end_of_generation(TokenId id) const { return id >= 0 && (id == eos || id == eot); }
};

}  // namespace ember::text
