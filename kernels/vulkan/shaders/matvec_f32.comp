// y[t][r] = Σ_c w[r][c] · x[t][c] for F32 weights: one workgroup per (row, token), its
// invocations striding over the columns, then a tree reduction in shared memory (no subgroup
// operations, so any subgroup size works). Rows beyond the dispatch's x count are walked in steps
// of it (maxComputeWorkGroupCount may be 65535, vocabularies are larger).
#version 450

layout(local_size_x_id = 0) in;  // the workgroup size, a specialization constant

layout(std430, binding = 0) readonly buffer Weights { float w[]; };
layout(std430, binding = 1) readonly buffer Input { float x[]; };
layout(std430, binding = 2) writeonly buffer Output { float y[]; };
layout(push_constant) uniform Shape {
  uint rows;
  uint cols;
} p;

shared float partial[gl_WorkGroupSize.x];

void main() {
  const uint lane = gl_LocalInvocationID.x, width = gl_WorkGroupSize.x;
  const uint t = gl_WorkGroupID.y;
  for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
    float sum = 0.0;
    for (uint c = lane; c < p.cols; c += width) sum += w[r * p.cols + c] * x[t * p.cols + c];
    partial[lane] = sum;
    barrier();
    for (uint s = width / 2; s > 0; s >>= 1) {
      if (lane < s) partial[lane] += partial[lane + s];
      barrier();
    }
    if (lane == 0) y[t * p.rows + r] = partial[0];
    barrier();
  }
}
