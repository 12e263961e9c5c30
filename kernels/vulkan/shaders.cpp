#include "kernels/vulkan/shaders.h"

#include <cstddef>

namespace ember::vulkan {
namespace spirv {
// Defined in the files embed_spirv.cmake generates.
extern const unsigned char matvec_f32[];
extern const size_t matvec_f32_bytes;
}  // namespace spirv

namespace shaders {

const ShaderCode kMatvecF32{"matvec_f32", spirv::matvec_f32, spirv::matvec_f32_bytes, 3,
                            2 * sizeof(uint32_t)};

}  // namespace shaders
}  // namespace ember::vulkan
