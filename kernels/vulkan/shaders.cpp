#include "kernels/vulkan/shaders.h"

#include <stdexcept>
#include <string>

namespace ember::vulkan {
namespace spirv {
// Defined in the shader_table.cpp that CMakeLists.txt generates.
extern const Embedded kTable[];
extern const size_t kTableSize;
}  // namespace spirv

namespace shaders {

ShaderCode find(std::string_view name, uint32_t buffers, uint32_t push_bytes) {
  for (size_t i = 0; i < spirv::kTableSize; ++i)
    if (name == spirv::kTable[i].name)
      return {spirv::kTable[i].name, spirv::kTable[i].code, spirv::kTable[i].bytes, buffers,
              push_bytes};
  throw std::out_of_range("no Vulkan shader '" + std::string(name) + "' in this build");
}

ShaderCode matvec_f32() {
  return find("matvec_f32", 3, 2 * sizeof(uint32_t));
}

}  // namespace shaders
}  // namespace ember::vulkan
