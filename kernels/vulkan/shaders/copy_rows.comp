// out[i] = x[rows[idx_off + i]] for rows of `cols` floats.
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Output { float y[]; };
layout(std430, binding = 2) readonly buffer Rows { int rows[]; };
layout(push_constant) uniform Push {
  uint n, cols, x_off, y_off, idx_off;
} p;

void main() {
  const uint total = p.n * p.cols;
  for (uint j = gl_GlobalInvocationID.x; j < total; j += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
    const uint i = j / p.cols, c = j % p.cols;
    y[p.y_off + j] = x[p.x_off + uint(rows[p.idx_off + i]) * p.cols + c];
  }
}
