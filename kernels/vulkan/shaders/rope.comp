// RoPE in table form (model/rope.h): for token t, head h and pair i < half,
//   x[a], x[b] ← x[a]·cos − x[b]·sin, x[a]·sin + x[b]·cos
// with (a, b) = (2i, 2i+1), or (i, i + half) when neox ≠ 0. cos and sin (magnitude included)
// come from the host per token: table[tab_off + 2(t·half + i)] and the word after it, computed in
// double precision there, so long positions lose nothing to float angles.
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Table { float table[]; };
layout(push_constant) uniform Push {
  uint tokens, n_heads, head_dim, half_, x_off, x_stride, tab_off, neox;
} p;

void main() {
  const uint n = p.tokens * p.n_heads * p.half_;
  for (uint j = gl_GlobalInvocationID.x; j < n; j += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
    const uint i = j % p.half_, h = (j / p.half_) % p.n_heads, t = j / (p.half_ * p.n_heads);
    const uint base = p.x_off + t * p.x_stride + h * p.head_dim;
    const uint a = base + (p.neox != 0u ? i : 2u * i), b = a + (p.neox != 0u ? p.half_ : 1u);
    const float c = table[p.tab_off + 2u * (t * p.half_ + i)];
    const float s = table[p.tab_off + 2u * (t * p.half_ + i) + 1u];
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}
