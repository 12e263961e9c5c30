// Writes row t of src (kv_dim floats) to position positions[pos_off + t] of one sequence's cache
// for one layer: F16 (f16 ≠ 0, two values per word, packHalf2x16) or F32 (one per word).
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Source { float src[]; };
layout(std430, binding = 1) writeonly buffer Cache { uint cache[]; };
layout(std430, binding = 2) readonly buffer Positions { int positions[]; };
layout(push_constant) uniform Push {
  uint tokens, kv_dim, src_off, src_stride, pos_off, f16;
} p;

void main() {
  const uint per_row = p.f16 != 0u ? p.kv_dim / 2u : p.kv_dim, n = p.tokens * per_row;
  for (uint j = gl_GlobalInvocationID.x; j < n; j += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
    const uint t = j / per_row, w = j % per_row;
    const uint row = uint(positions[p.pos_off + t]) * per_row;
    const uint s = p.src_off + t * p.src_stride;
    if (p.f16 != 0u)
      cache[row + w] = packHalf2x16(vec2(src[s + 2u * w], src[s + 2u * w + 1u]));
    else
      cache[row + w] = floatBitsToUint(src[s + w]);
  }
}
