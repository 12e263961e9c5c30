// out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight, one workgroup per row (in place allowed).
// The weight vector is F32 (binding 2, a weight buffer read from word w_off).
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Input { float x[]; };
layout(std430, binding = 1) buffer Output { float y[]; };
layout(std430, binding = 2) readonly buffer Weight { float w[]; };
layout(push_constant) uniform Push {
  uint rows, cols, x_off, y_off, w_off;
  float eps;
} p;

shared float partial[gl_WorkGroupSize.x];

void main() {
  const uint lane = gl_LocalInvocationID.x, width = gl_WorkGroupSize.x;
  for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
    const uint xr = p.x_off + r * p.cols, yr = p.y_off + r * p.cols;
    float sum = 0.0;
    for (uint c = lane; c < p.cols; c += width) sum += x[xr + c] * x[xr + c];
    partial[lane] = sum;
    barrier();
    for (uint s = width / 2u; s > 0u; s >>= 1) {
      if (lane < s) partial[lane] += partial[lane + s];
      barrier();
    }
    const float inv = 1.0 / sqrt(partial[0] / float(p.cols) + p.eps);
    barrier();  // partial[0] read by all before the next row overwrites it
    for (uint c = lane; c < p.cols; c += width) y[yr + c] = x[xr + c] * inv * w[p.w_off + c];
  }
}
