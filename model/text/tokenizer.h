// Text ↔ token ids, exactly as the model was trained: SentencePiece-style vocabularies merge
// characters by score with byte fallback; byte-level BPE vocabularies pre-tokenize with the
// model's expressions and merge byte-encoded characters by rank.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/text/pretokenizer.h"
#include "model/text/vocab.h"

namespace ember::text {

class Tokenizer {
 public:
  explicit Tokenizer(Vocab vocab);

  const Vocab& vocab() const { return vocab_; }
  // Whether tokenizer.ggml.pre named a pre-tokenizer ember knows (else "default" is used).
  bool pre_tokenizer_known() const { return pre_known_; }

  // add_special: put BOS/EOS around the ids as the vocabulary asks. parse_special: control
  // tokens written in the text (<|im_start|>) become their ids; otherwise they are plain text.
  // User-defined tokens are always matched.
  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const;
  // A prompt: with `special` (a rendered chat template) control tokens are parsed and BOS is
  // added only when the text does not begin with it (templates often write it themselves);
  // without, plain text with the vocabulary's BOS/EOS.
  std::vector<TokenId> encode_prompt(std::string_view text, bool special) const;

  // The bytes one token stands for (possibly part of a UTF-8 character). Control and unknown
  // tokens give "" unless `special`, then their text.
  std::string piece(TokenId id, bool special = false) const;

  // The text of a sequence. The space a SentencePiece vocabulary puts before the text is removed.
  std::string decode(std::span<const TokenId> ids, bool special = false) const;

 private:
  struct Fragment {
    TokenId token;  // -1 for text
    size_t start, length;
  };
  std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;
  void encode_sentencepiece(std::string_view text, std::vector<TokenId>& out) const;
  void encode_bpe_word(std::string_view word, std::vector<TokenId>& out) const;

  Vocab vocab_;
  bool pre_known_ = false;  // before pre_: its constructor sets it
  PreTokenizer pre_;
  std::vector<TokenId> specials_;  // matched in text, longest first
  // The same by text, and their distinct lengths: finding which specials occur in a text costs
  // one hash lookup per position and length, instead of one search per special token
  // (vocabularies carry thousands of them).
  std::unordered_map<std::string_view, TokenId> special_by_text_;
  std::vector<size_t> special_lengths_;
  std::array<TokenId, 256> byte_tokens_{};   // SentencePiece: id of <0xNN>, or -1
  std::array<std::string, 256> byte_chars_;  // BPE: the printable character standing for a byte
  std::vector<int16_t> char_bytes_;          // BPE: code point → byte it stands for, or -1
};

// Turns a stream of ids into text that never splits a UTF-8 character: bytes of an unfinished
// character are held back until the token that completes it arrives.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool special = false)
      : tokenizer_(tokenizer), special_(special) {}
  // The text that is complete after `id`; `special`: a control token's text is shown this once.
  std::string push(TokenId id) { return push(id, special_); }
  std::string push(TokenId id, bool special);
  // Whatever is still held back (an incomplete character at the very end).
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  bool special_;
  bool at_start_ = true;
  std::string pending_;
};

}  // namespace ember::text
