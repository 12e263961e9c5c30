// out[t][c] = Σ_i weights[t·k + i] · down[t·k + i][c]: the routed experts' outputs of each
// token, weighted by the router.
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Down { float down[]; };
layout(std430, binding = 1) readonly buffer Weights { float weights[]; };
layout(std430, binding = 2) writeonly buffer Output { float y[]; };
layout(push_constant) uniform Push {
  uint tokens, cols, k, down_off, w_off, y_off;
} p;

void main() {
  const uint n = p.tokens * p.cols;
  for (uint j = gl_GlobalInvocationID.x; j < n; j += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
    const uint t = j / p.cols, c = j % p.cols;
    float s = 0.0;
    for (uint i = 0u; i < p.k; ++i)
      s += weights[p.w_off + t * p.k + i] * down[p.down_off + (t * p.k + i) * p.cols + c];
    y[p.y_off + j] = s;
  }
}
