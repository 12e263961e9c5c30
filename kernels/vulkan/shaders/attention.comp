// Causal attention of one sequence's tokens over its cached keys and values, flash-style: one
// workgroup per (query head, token) walks the key positions lo..pos in chunks of one position
// per invocation with an online softmax (running maximum m and sum l), so no score matrix is
// ever stored. Query head h reads kv head h / group (GQA). Scores are q·k·scale, soft-capped to
// softcap·tanh(s / softcap) when softcap > 0; window > 0 keeps the last `window` positions.
// Each invocation owns output dimensions lane, lane + width, ... (head_dim ≤ 8·width).
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Query { float q[]; };
layout(std430, binding = 1) writeonly buffer Output { float y[]; };
layout(std430, binding = 2) readonly buffer Keys { uint kc[]; };
layout(std430, binding = 3) readonly buffer Values { uint vc[]; };
layout(std430, binding = 4) readonly buffer Positions { int positions[]; };
layout(push_constant) uniform Push {
  uint group, head_dim, kv_dim, q_off, q_stride, y_off, y_stride, pos_off, window, f16;
  float scale, softcap;
} p;

const uint kMaxDims = 8u;
shared float qs[512];
shared float scores[gl_WorkGroupSize.x];
shared float partial[gl_WorkGroupSize.x];

float cached(uint which, uint e) {  // element e of the keys (0) or values (1) of this layer
  if (p.f16 != 0u) {
    const uint w = which == 0u ? kc[e >> 1] : vc[e >> 1];
    return unpackHalf2x16(w)[e & 1u];
  }
  return uintBitsToFloat(which == 0u ? kc[e] : vc[e]);
}

// Tree reduction over the workgroup of `v` (maximum when take_max, else sum).
float reduce(float v, bool take_max) {
  const uint lane = gl_LocalInvocationID.x;
  partial[lane] = v;
  barrier();
  for (uint s = gl_WorkGroupSize.x / 2u; s > 0u; s >>= 1) {
    if (lane < s)
      partial[lane] = take_max ? max(partial[lane], partial[lane + s]) : partial[lane] + partial[lane + s];
    barrier();
  }
  const float r = partial[0];
  barrier();
  return r;
}

void main() {
  const uint lane = gl_LocalInvocationID.x, width = gl_WorkGroupSize.x;
  const uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, kvh = h / p.group;
  const int pos = positions[p.pos_off + t];
  const int lo = p.window > 0u ? max(0, pos - int(p.window) + 1) : 0;
  const uint qb = p.q_off + t * p.q_stride + h * p.head_dim, kb = kvh * p.head_dim;
  for (uint d = lane; d < p.head_dim; d += width) qs[d] = q[qb + d];
  barrier();

  float m = -1.0 / 0.0, l = 0.0;
  float acc[kMaxDims];
  for (uint i = 0u; i < kMaxDims; ++i) acc[i] = 0.0;
  for (int j0 = lo; j0 <= pos; j0 += int(width)) {
    const int j = j0 + int(lane);
    float s = -1.0 / 0.0;
    if (j <= pos) {
      const uint row = uint(j) * p.kv_dim + kb;
      float dot = 0.0;
      for (uint d = 0u; d < p.head_dim; ++d) dot += qs[d] * cached(0u, row + d);
      s = dot * p.scale;
      if (p.softcap > 0.0) s = p.softcap * tanh(s / p.softcap);
    }
    const float m_new = max(m, reduce(s, true));
    const float e = j <= pos ? exp(s - m_new) : 0.0;
    scores[lane] = e;
    const float correction = exp(m - m_new);
    l = l * correction + reduce(e, false);  // reduce's barriers also publish scores[]
    const int count = min(int(width), pos - j0 + 1);
    for (uint i = 0u; i < kMaxDims; ++i) {
      const uint d = lane + i * width;
      if (d >= p.head_dim) break;
      float a = acc[i] * correction;
      for (int k = 0; k < count; ++k) a += scores[k] * cached(1u, uint(j0 + k) * p.kv_dim + kb + d);
      acc[i] = a;
    }
    m = m_new;
    barrier();  // scores[] is rewritten by the next chunk
  }
  for (uint i = 0u; i < kMaxDims; ++i) {
    const uint d = lane + i * width;
    if (d < p.head_dim) y[p.y_off + t * p.y_stride + h * p.head_dim + d] = acc[i] / l;
  }
}
