// The compute shaders embedded in the binary (kernels/vulkan/shaders/*.comp, compiled at build
// time; the weight shaders once per block format, named NAME_FORMAT as in mul_mat_q4_k), with
// how each binds: storage buffers at set 0, bindings 0..n−1, and its push constants.
#pragma once

#include <cstddef>
#include <string_view>

#include "kernels/vulkan/context.h"

namespace ember::vulkan {
namespace spirv {
struct Embedded {
  const char* name;
  const unsigned char* code;
  size_t bytes;
};
}  // namespace spirv

namespace shaders {

// The shader called `name` binding `buffers` storage buffers and `push_bytes` of push constants
// (the caller knows its interface from the .comp file). Throws std::out_of_range for a name that
// was not compiled in (a block format without shaders, for instance).
ShaderCode find(std::string_view name, uint32_t buffers, uint32_t push_bytes);

// matvec_f32 (the plain F32 matrix-vector product the context's tests use): buffers (w: rows ×
// cols F32, x: tokens × cols, y: tokens × rows); push {uint rows, cols}; dispatch
// (min(rows, 65535), tokens).
ShaderCode matvec_f32();

}  // namespace shaders
}  // namespace ember::vulkan
