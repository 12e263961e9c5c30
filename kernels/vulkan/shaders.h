// The compute shaders embedded in the binary (kernels/vulkan/shaders/*.comp, compiled at build
// time), with how each binds: storage buffers at set 0, bindings 0..n−1, and its push constants.
#pragma once

#include "kernels/vulkan/context.h"

namespace ember::vulkan::shaders {

// matvec_f32: buffers (w: rows × cols F32, x: tokens × cols, y: tokens × rows); push
// {uint rows, cols}; dispatch (min(rows, 65535), tokens).
extern const ShaderCode kMatvecF32;

}  // namespace ember::vulkan::shaders
