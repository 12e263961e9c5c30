// x[r][c] *= sigmoid(gate[r]) (qwen2moe's shared-expert gate, a [rows, 1] tensor).
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Gate { float g[]; };
layout(push_constant) uniform Push {
  uint rows, cols, x_off, g_off;
} p;

void main() {
  const uint n = p.rows * p.cols;
  for (uint i = gl_GlobalInvocationID.x; i < n; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x)
    x[p.x_off + i] *= 1.0 / (1.0 + exp(-g[p.g_off + i / p.cols]));
}
