// x[r][c] += s_r · y[r·y_stride + c] over a [rows, cols] x: the residual add (y_stride = cols,
// s_r = 1), a bias (y_stride = 0: one row for all) and LoRA's per-row scales (scaled ≠ 0:
// s_r = scales[s_off + r], rows whose scale is 0 untouched).
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Y { float y[]; };
layout(std430, binding = 2) readonly buffer Scales { float scales[]; };
layout(push_constant) uniform Push {
  uint rows, cols, x_off, y_off, y_stride, s_off, scaled;
} p;

void main() {
  const uint n = p.rows * p.cols;
  for (uint i = gl_GlobalInvocationID.x; i < n; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
    const uint r = i / p.cols, c = i % p.cols;
    const float v = y[p.y_off + r * p.y_stride + c];
    if (p.scaled == 0u) {
      x[p.x_off + i] += v;
    } else {
      const float s = scales[p.s_off + r];
      if (s != 0.0) x[p.x_off + i] += s * v;
    }
  }
}
