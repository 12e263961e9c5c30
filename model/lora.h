// LoRA adapters, applied without merging: for an adapted weight W ([n_in, n_out]),
//   y = W·x + s · (alpha / rank) · B·(A·x)
// with A = NAME.lora_a ([n_in, rank] in GGUF order: rank rows of n_in) and B = NAME.lora_b
// ([rank, n_out]: n_out rows of rank), `alpha` from adapter.lora.alpha (0: the factor is 1, as
// llama.cpp does) and s the adapter's scale (per request in the server). The file format is what
// llama.cpp's convert_lora_to_gguf.py writes: general.type "adapter", adapter.type "lora",
// general.architecture of the base model.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "gguf/model_files.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace ember::model {

class LoraAdapter {
 public:
  // One adapted weight: its A and B, and alpha / rank.
  struct Pair {
    Weight a, b;
    float factor = 1;
  };

  // Opens `path` for the model `base` (whose hyper-parameters are `hp`). Throws
  // std::runtime_error when the file is not a LoRA adapter, was made for another architecture,
  // adapts a tensor the base lacks, or has shapes that do not fit it.
  static std::shared_ptr<const LoraAdapter> open(const std::string& path,
                                                 const gguf::ModelFiles& base,
                                                 const HyperParams& hp);

  // The pair for the base tensor `name` ("blk.0.attn_q.weight"), or nullptr.
  const Pair* find(std::string_view name) const;
  const std::string& path() const { return path_; }
  size_t size() const { return pairs_.size(); }

 private:
  std::string path_;
  std::unique_ptr<gguf::ModelFiles> files_;  // mapped for as long as the adapter lives
  std::map<std::string, Pair, std::less<>> pairs_;
};

// "FILE" or "FILE:SCALE" (the CLI's --lora and EMBER_LORA_GGUF), scale 1 by default. Throws
// std::invalid_argument for a scale that is not a number.
std::pair<std::string, float> parse_lora_spec(const std::string& spec);

}  // namespace ember::model
