#include "model/architectures.h"

namespace ember::model {
namespace {

using enum RopeStyle;
using enum Activation;
using enum WindowPattern;

// Sources: the architectures' reference implementations (Hugging Face transformers) and the
// GGUF tensor/key names of llama.cpp's converter. Columns as in ArchSpec.
// clang-format off
constexpr ArchSpec kArchitectures[] = {
    // name     rope     act        qkv_b  qk_n   post   emb    f_qkv  f_gu   caps   window       local wide  experts shared norm
    {"llama",    kNormal, kSilu,     false, false, false, false, false, false, false, kNone,       0,    0,    true,   false, true},
    {"mistral",  kNormal, kSilu,     false, false, false, false, false, false, false, kNone,       0,    0,    true,   false, true},
    {"qwen2",    kNeox,   kSilu,     true,  false, false, false, false, false, false, kNone,       0,    0,    false,  false, false},
    {"qwen2moe", kNeox,   kSilu,     true,  false, false, false, false, false, false, kNone,       0,    0,    true,   true,  false},
    {"qwen3",    kNeox,   kSilu,     false, true,  false, false, false, false, false, kNone,       0,    0,    false,  false, false},
    {"qwen3moe", kNeox,   kSilu,     false, true,  false, false, false, false, false, kNone,       0,    0,    true,   false, true},
    {"gemma",    kNeox,   kGeluTanh, false, false, false, true,  false, false, false, kNone,       0,    0,    false,  false, false},
    {"gemma2",   kNeox,   kGeluTanh, false, false, true,  true,  false, false, true,  kEvenLayers, 0,    46,   false,  false, false},
    {"gemma3",   kNeox,   kGeluTanh, false, true,  true,  true,  false, false, false, kPeriodic,   1e4f, 62,   false,  false, false},
    {"phi3",     kNeox,   kSilu,     false, false, false, false, true,  true,  false, kUnused,     0,    0,    false,  false, false},
};
// clang-format on

}  // namespace

const ArchSpec* find_architecture(std::string_view name) {
  for (const ArchSpec& a : kArchitectures)
    if (name == a.name) return &a;
  return nullptr;
}

std::string architecture_names() {
  std::string names;
  for (const ArchSpec& a : kArchitectures)
    names += (names.empty() ? "" : ", ") + std::string(a.name);
  return names;
}

}  // namespace ember::model
