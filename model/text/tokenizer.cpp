#include "model/text/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <queue>

#include "model/text/utf8.h"

namespace ember::text {
namespace {

constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581 "▁": SentencePiece's space

// Byte-level BPE stands each byte for a printable character: bytes that are printable Latin-1
// stand for themselves, the others for code points 256, 257, ... in byte order.
bool is_printable_byte(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

// One symbol of the merge loops: a run of the text, linked to its neighbours.
struct Symbol {
  size_t start, length;
  int prev, next;
};

// Splits `text` into one symbol per UTF-8 character.
std::vector<Symbol> symbols_of(std::string_view text) {
  std::vector<Symbol> symbols;
  for (size_t i = 0; i < text.size();) {
    size_t n = utf8::char_length(text, i);
    int index = static_cast<int>(symbols.size());
    symbols.push_back({i, n, index - 1, i + n < text.size() ? index + 1 : -1});
    i += n;
  }
  return symbols;
}

// A candidate merge of symbols left and left.next. `priority` orders candidates (higher first:
// the score for SentencePiece, minus the rank for BPE); ties go to the leftmost pair.
struct Candidate {
  float priority;
  int left, right;
  size_t length;  // of the merged text: a candidate whose symbols changed since is stale
  bool operator<(const Candidate& o) const {
    return priority < o.priority || (priority == o.priority && left > o.left);
  }
};

// Runs the merge loop: `priority_of(text)` gives a candidate's priority, or nothing when the
// pair may not merge. Returns the surviving symbols in order.
template <class PriorityOf>
std::vector<Symbol> merge(std::string_view text, PriorityOf priority_of) {
  std::vector<Symbol> symbols = symbols_of(text);
  std::priority_queue<Candidate> queue;
  auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = symbols[left];
    const Symbol& r = symbols[right];
    std::string_view merged = text.substr(l.start, l.length + r.length);
    if (auto p =
            priority_of(text.substr(l.start, l.length), text.substr(r.start, r.length), merged))
      queue.push({*p, left, right, merged.size()});
  };
  for (size_t i = 1; i < symbols.size(); ++i)
    consider(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol& l = symbols[c.left];
    Symbol& r = symbols[c.right];
    if (l.length == 0 || r.length == 0 || l.length + r.length != c.length) continue;  // stale
    l.length += r.length;
    r.length = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  std::vector<Symbol> out;
  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i]);
  return out;
}

}  // namespace

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)), pre_(vocab_.pre, &pre_known_) {
  for (TokenId id = 0; id < static_cast<TokenId>(vocab_.size()); ++id) {
    TokenType t = vocab_.type(id);
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
        !vocab_.pieces[id].empty())
      specials_.push_back(id);
  }
  std::stable_sort(specials_.begin(), specials_.end(), [&](TokenId a, TokenId b) {
    return vocab_.pieces[a].size() > vocab_.pieces[b].size();
  });
  for (TokenId id : specials_) {
    std::string_view text = vocab_.pieces[id];
    special_by_text_.emplace(text, id);
    if (std::find(special_lengths_.begin(), special_lengths_.end(), text.size()) ==
        special_lengths_.end())
      special_lengths_.push_back(text.size());
  }

  byte_tokens_.fill(-1);
  char_bytes_.assign(512, -1);
  int next_char = 256;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_tokens_[b] = vocab_.find(name);
    int cp = is_printable_byte(b) ? b : next_char++;
    byte_chars_[b] = utf8::encode(static_cast<uint32_t>(cp));
    char_bytes_[cp] = static_cast<int16_t>(b);
  }
}

std::vector<Tokenizer::Fragment> Tokenizer::split_special(std::string_view text,
                                                          bool parse_special) const {
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({-1, 0, text.size()});
  // Which special tokens occur at all; only those need the splitting below.
  std::vector<bool> occurs(specials_.size() ? vocab_.size() : 0, false);
  bool any = false;
  for (size_t length : special_lengths_)
    for (size_t pos = 0; pos + length <= text.size(); ++pos) {
      auto it = special_by_text_.find(text.substr(pos, length));
      if (it != special_by_text_.end()) occurs[it->second] = any = true;
    }
  if (!any) return fragments;
  for (TokenId id : specials_) {
    if (!occurs[id]) continue;
    if (!parse_special && vocab_.type(id) != TokenType::kUserDefined) continue;
    const std::string& special = vocab_.pieces[id];
    std::vector<Fragment> next;
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.start, end = f.start + f.length;
      for (;;) {
        size_t hit = text.substr(0, end).find(special, pos);
        if (hit == std::string_view::npos) break;
        if (hit > pos) next.push_back({-1, pos, hit - pos});
        next.push_back({id, hit, special.size()});
        pos = hit + special.size();
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    fragments = std::move(next);
  }
  return fragments;
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<TokenId> out;
  if (add_special && vocab_.add_bos && vocab_.bos >= 0) out.push_back(vocab_.bos);
  bool after_special =
      true;  // SentencePiece puts a space before text at the start or after a special token
  for (const Fragment& f : split_special(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    std::string_view part = text.substr(f.start, f.length);
    if (vocab_.model == TokenizerModel::kSentencePiece) {
      std::string escaped;
      if (vocab_.add_space_prefix && after_special) escaped += kSpaceMark;
      for (char c : part) {
        if (c == ' ')
          escaped += kSpaceMark;
        else
          escaped += c;
      }
      encode_sentencepiece(escaped, out);
    } else {
      for (std::string_view word : pre_.split(part)) encode_bpe_word(word, out);
    }
    after_special = false;
  }
  if (add_special && vocab_.add_eos && vocab_.eos >= 0) out.push_back(vocab_.eos);
  return out;
}

void Tokenizer::encode_sentencepiece(std::string_view text, std::vector<TokenId>& out) const {
  auto score_of = [&](std::string_view, std::string_view,
                      std::string_view merged) -> std::optional<float> {
    TokenId id = vocab_.find(std::string(merged));
    if (id < 0) return std::nullopt;
    return vocab_.scores[id];
  };
  for (const Symbol& s : merge(text, score_of)) {
    std::string piece(text.substr(s.start, s.length));
    TokenId id = vocab_.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (unsigned char b : piece) {  // byte fallback
      if (byte_tokens_[b] >= 0)
        out.push_back(byte_tokens_[b]);
      else if (vocab_.unk >= 0)
        out.push_back(vocab_.unk);
    }
  }
}

void Tokenizer::encode_bpe_word(std::string_view word, std::vector<TokenId>& out) const {
  std::string encoded;
  for (unsigned char b : word) encoded += byte_chars_[b];
  auto rank_of = [&](std::string_view left, std::string_view right,
                     std::string_view) -> std::optional<float> {
    std::string key;
    key.reserve(left.size() + right.size() + 1);
    key.append(left).append(1, ' ').append(right);
    auto it = vocab_.merge_ranks.find(key);
    if (it == vocab_.merge_ranks.end()) return std::nullopt;
    return -static_cast<float>(it->second);
  };
  for (const Symbol& s : merge(encoded, rank_of)) {
    std::string piece = encoded.substr(s.start, s.length);
    TokenId id = vocab_.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (size_t i = 0; i < piece.size();) {  // characters the merges never joined
      size_t n = utf8::char_length(piece, i);
      TokenId c = vocab_.find(piece.substr(i, n));
      if (c >= 0)
        out.push_back(c);
      else if (vocab_.unk >= 0)
        out.push_back(vocab_.unk);
      i += n;
    }
  }
}

std::string Tokenizer::piece(TokenId id, bool special) const {
  if (id < 0 || id >= static_cast<TokenId>(vocab_.size())) return "";
  const std::string& text = vocab_.pieces[id];
  switch (vocab_.type(id)) {
    case TokenType::kUserDefined:
      return text;
    case TokenType::kNormal:
      break;
    case TokenType::kByte:
      if (vocab_.model == TokenizerModel::kSentencePiece && text.size() == 6)
        return std::string(1, static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
      break;
    default:
      return special ? text : "";  // control, unknown, unused
  }
  std::string out;
  if (vocab_.model == TokenizerModel::kSentencePiece) {
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
        out += ' ';
        i += kSpaceMark.size();
      } else {
        out += text[i++];
      }
    }
    return out;
  }
  for (size_t i = 0; i < text.size();) {  // byte-level: map each character back to its byte
    size_t n = utf8::char_length(text, i);
    uint32_t cp = static_cast<unsigned char>(text[i]);
    if (n == 2) cp = ((cp & 0x1f) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3f);
    if (n <= 2 && cp < char_bytes_.size() && char_bytes_[cp] >= 0)
      out += static_cast<char>(char_bytes_[cp]);
    else
      out.append(text, i, n);
    i += n;
  }
  return out;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool special) const {
  StreamDecoder stream(*this, special);  // one place strips the prefix space
  std::string out;
  for (TokenId id : ids) out += stream.push(id);
  return out + stream.finish();
}

std::string StreamDecoder::push(TokenId id, bool special) {
  std::string p = tokenizer_.piece(id, special);
  if (at_start_ && !p.empty()) {
    if (tokenizer_.vocab().add_space_prefix && p[0] == ' ') p.erase(0, 1);
    at_start_ = false;
  }
  pending_ += p;
  size_t hold = utf8::incomplete_tail(pending_);
  std::string ready = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return ready;
}

std::string StreamDecoder::finish() {
  std::string rest = std::move(pending_);
  pending_.clear();
  return rest;
}

std::vector<TokenId> Tokenizer::encode_prompt(std::string_view text, bool special) const {
  const bool has_bos = special && vocab_.bos >= 0 &&
                       text.substr(0, vocab_.pieces[vocab_.bos].size()) ==
                           std::string_view(vocab_.pieces[vocab_.bos]);
  return encode(text, !has_bos, special);
}

}  // namespace ember::text
