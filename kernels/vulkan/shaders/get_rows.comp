// Embedding gather: out[i] = scale · (row ids[ids_off + i] of the table), dequantised. The table
// may be split over several buffers by rows; this dispatch's buffer holds rows row_first ..
// row_first + row_count − 1, and ids outside it are another dispatch's. One workgroup per id,
// one 16-element chunk per invocation.
#version 450
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "dequant.glsl"

layout(std430, binding = 1) writeonly buffer Output { float y[]; };
layout(std430, binding = 2) readonly buffer Ids { int ids[]; };

layout(push_constant) uniform Push {
  uint n, cols, row_bytes, row_first, row_count, y_off, ids_off;
  float scale;
} p;

void main() {
  const uint i = gl_WorkGroupID.x;
  const int id = ids[p.ids_off + i];
  if (id < int(p.row_first) || id >= int(p.row_first + p.row_count)) return;
  const uint row = uint(id - int(p.row_first)) * p.row_bytes;
  for (uint c = gl_LocalInvocationID.x; c < (p.cols + 15u) / 16u; c += gl_WorkGroupSize.x) {
    float v[16];
    dequant16(row, c, p.cols, v);
    for (uint k = 0u; k < min(16u, p.cols - 16u * c); ++k)
      y[p.y_off + i * p.cols + 16u * c + k] = p.scale == 1.0 ? v[k] : v[k] * p.scale;
  }
}
