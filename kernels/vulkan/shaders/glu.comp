// out = act(gate) · up element-wise; act = SiLU (gelu = 0) or GELU in its tanh form (gelu = 1).
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Gate { float g[]; };
layout(std430, binding = 1) readonly buffer Up { float u[]; };
layout(std430, binding = 2) writeonly buffer Output { float y[]; };
layout(push_constant) uniform Push {
  uint n, g_off, u_off, y_off, gelu;
} p;

void main() {
  for (uint i = gl_GlobalInvocationID.x; i < p.n; i += gl_NumWorkGroups.x * gl_WorkGroupSize.x) {
    const float x = g[p.g_off + i];
    float a;
    if (p.gelu != 0u)
      a = 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
    else
      a = x / (1.0 + exp(-x));
    y[p.y_off + i] = a * u[p.u_off + i];
  }
}
