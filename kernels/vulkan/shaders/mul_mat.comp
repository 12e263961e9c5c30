// y[t][r] = Σ_c W[r][c] · x[t][c] for weights in one block format (dequant.glsl), used for both
// generation (one token) and prompts: a workgroup computes one weight row for a tile of up to
// TILE tokens, so each dequantised chunk of the row serves every token of the tile. Invocations
// stride over 16-element chunks of the row; the partial sums meet in a tree reduction in shared
// memory (no subgroup operations: any subgroup size works). Rows beyond the dispatch's x count
// are walked in steps of it (maxComputeWorkGroupCount may be 65535; vocabularies are larger).
//
// With MUL_MAT_ID (mixture of experts, ggml's mul_mat_id): "token" i of the dispatch is one
// (token, expert slot) pair; its expert is ids[ids_off + i], its input row x[i / x_div], and the
// weights are that expert's matrix in a buffer that holds experts expert_first ..
// expert_first + expert_count − 1 (pairs routed elsewhere are another dispatch's).
#version 450
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "dequant.glsl"

layout(std430, binding = 1) readonly buffer Input { float x[]; };
layout(std430, binding = 2) writeonly buffer Output { float y[]; };
#ifdef MUL_MAT_ID
layout(std430, binding = 3) readonly buffer Ids { int ids[]; };
#define TILE 1u
#else
#define TILE 8u
#endif

layout(push_constant) uniform Push {
  uint rows;       // rows to compute
  uint cols;       // elements per row
  uint row_bytes;  // bytes per row in the weight buffer
  uint w_row0;     // the first row's index in the weight buffer
  uint tokens;     // rows of x (pairs with MUL_MAT_ID)
  uint x_off, x_stride, y_off, y_stride;  // in floats
  uint x_div, ids_off, expert_first, expert_count, expert_bytes;
} p;

shared float partial[TILE * gl_WorkGroupSize.x];

void main() {
  const uint lane = gl_LocalInvocationID.x, width = gl_WorkGroupSize.x;
  const uint t0 = gl_WorkGroupID.y * TILE, nt = min(TILE, p.tokens - t0);
  uint base = 0u, x_row0 = t0;
#ifdef MUL_MAT_ID
  const int e = ids[p.ids_off + t0];
  if (e < int(p.expert_first) || e >= int(p.expert_first + p.expert_count)) return;
  base = uint(e - int(p.expert_first)) * p.expert_bytes;
  x_row0 = t0 / p.x_div;
#endif
  const uint chunks = (p.cols + 15u) / 16u;
  for (uint r = gl_WorkGroupID.x; r < p.rows; r += gl_NumWorkGroups.x) {
    const uint row = base + (p.w_row0 + r) * p.row_bytes;
    float sum[TILE];
    for (uint t = 0u; t < TILE; ++t) sum[t] = 0.0;
    for (uint c = lane; c < chunks; c += width) {
      float v[16];
      dequant16(row, c, p.cols, v);
      const uint n = min(16u, p.cols - 16u * c);
      for (uint t = 0u; t < nt; ++t) {
        const uint xb = p.x_off + (x_row0 + t) * p.x_stride + 16u * c;
        float s = 0.0;
        if (n == 16u) {  // a constant trip count: unrolled, v[] stays in registers
          for (uint i = 0u; i < 16u; ++i) s += v[i] * x[xb + i];
        } else {
          for (uint i = 0u; i < 16u; ++i)
            if (i < n) s += v[i] * x[xb + i];
        }
        sum[t] += s;
      }
    }
    for (uint t = 0u; t < nt; ++t) partial[t * width + lane] = sum[t];
    barrier();
    for (uint s = width / 2u; s > 0u; s >>= 1) {
      if (lane < s)
        for (uint t = 0u; t < nt; ++t) partial[t * width + lane] += partial[t * width + lane + s];
      barrier();
    }
    for (uint t = lane; t < nt; t += width) y[p.y_off + (t0 + t) * p.y_stride + r] = partial[t * width];
    barrier();
  }
}
