#include "gguf/types.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace gguf {
namespace {

using T = TensorType;
// Block layouts: element count and byte size of one block (see gguf/quants.py for each layout).
constexpr std::array kTypes = {
    TypeTraits{T::F32, "F32", 1, 4},
    TypeTraits{T::F16, "F16", 1, 2},
    TypeTraits{T::Q4_0, "Q4_0", 32, 18},
    TypeTraits{T::Q4_1, "Q4_1", 32, 20},
    TypeTraits{T::Q5_0, "Q5_0", 32, 22},
    TypeTraits{T::Q5_1, "Q5_1", 32, 24},
    TypeTraits{T::Q8_0, "Q8_0", 32, 34},
    TypeTraits{T::Q8_1, "Q8_1", 32, 40},
    TypeTraits{T::Q2_K, "Q2_K", 256, 84},
    TypeTraits{T::Q3_K, "Q3_K", 256, 110},
    TypeTraits{T::Q4_K, "Q4_K", 256, 144},
    TypeTraits{T::Q5_K, "Q5_K", 256, 176},
    TypeTraits{T::Q6_K, "Q6_K", 256, 210},
    TypeTraits{T::Q8_K, "Q8_K", 256, 292},
    TypeTraits{T::IQ2_XXS, "IQ2_XXS", 256, 66},
    TypeTraits{T::IQ2_XS, "IQ2_XS", 256, 74},
    TypeTraits{T::IQ3_XXS, "IQ3_XXS", 256, 98},
    TypeTraits{T::IQ1_S, "IQ1_S", 256, 50},
    TypeTraits{T::IQ4_NL, "IQ4_NL", 32, 18},
    TypeTraits{T::IQ3_S, "IQ3_S", 256, 110},
    TypeTraits{T::IQ2_S, "IQ2_S", 256, 82},
    TypeTraits{T::IQ4_XS, "IQ4_XS", 256, 136},
    TypeTraits{T::I8, "I8", 1, 1},
    TypeTraits{T::I16, "I16", 1, 2},
    TypeTraits{T::I32, "I32", 1, 4},
    TypeTraits{T::I64, "I64", 1, 8},
    TypeTraits{T::F64, "F64", 1, 8},
    TypeTraits{T::IQ1_M, "IQ1_M", 256, 56},
    TypeTraits{T::BF16, "BF16", 1, 2},
    TypeTraits{T::Q4_0_4_4, "Q4_0_4_4", 32, 18},
    TypeTraits{T::Q4_0_4_8, "Q4_0_4_8", 32, 18},
    TypeTraits{T::Q4_0_8_8, "Q4_0_8_8", 32, 18},
    TypeTraits{T::TQ1_0, "TQ1_0", 256, 54},
    TypeTraits{T::TQ2_0, "TQ2_0", 256, 66},
    TypeTraits{T::IQ4_NL_4_4, "IQ4_NL_4_4", 32, 18},
    TypeTraits{T::IQ4_NL_4_8, "IQ4_NL_4_8", 32, 18},
    TypeTraits{T::IQ4_NL_8_8, "IQ4_NL_8_8", 32, 18},
    TypeTraits{T::MXFP4, "MXFP4", 32, 17},
    TypeTraits{T::NVFP4, "NVFP4", 64, 36},
    TypeTraits{T::Q1_0, "Q1_0", 128, 18},
};

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

const TypeTraits* find_type(uint32_t id) {
  for (const TypeTraits& t : kTypes)
    if (static_cast<uint32_t>(t.type) == id) return &t;
  return nullptr;
}

const TypeTraits& traits(TensorType type) {
  return *find_type(static_cast<uint32_t>(type));
}

std::optional<TensorType> type_from_name(std::string_view name) {
  for (const TypeTraits& t : kTypes)
    if (equal_ignoring_case(t.name, name)) return t.type;
  return std::nullopt;
}

TypeTable all_types() {
  return {kTypes.data(), kTypes.data() + kTypes.size()};
}

}  // namespace gguf
