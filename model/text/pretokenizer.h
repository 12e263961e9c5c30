// Byte-level BPE vocabularies split text into words before merging, with regular expressions
// named by tokenizer.ggml.pre. Each expression of a pre-tokenizer is applied in turn to every
// piece left by the previous ones; matches and the text between them both become pieces.
//
// The expressions need Unicode categories (\p{L}, \p{N}, \s over all of Unicode), so they run on
// PCRE2 in UTF mode rather than std::regex (which knows only ASCII classes); see
// docs/ARCHITECTURE.md.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ember::text {

class PreTokenizer {
 public:
  // Unknown names fall back to "default"; `known` (if given) says whether the name was known.
  explicit PreTokenizer(std::string_view name, bool* known = nullptr);
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;

  // The pieces of `text`, in order; together they are exactly `text`.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Compiled;
  std::vector<std::unique_ptr<Compiled>> expressions_;
};

}  // namespace ember::text
