// Mixture-of-experts routing, one invocation per token: softmax over the n_expert router logits,
// the k most probable experts (ties: the lower index first, as a stable sort gives), their
// probabilities renormalised to sum 1 when norm ≠ 0. Writes ids[t·k + i] and weights[t·k + i].
#version 450

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Logits { float logits[]; };
layout(std430, binding = 1) writeonly buffer Ids { int ids[]; };
layout(std430, binding = 2) writeonly buffer Weights { float weights[]; };
layout(push_constant) uniform Push {
  uint tokens, n_expert, k, norm, logits_off, ids_off, w_off;
} p;

const uint kMaxUsed = 16u;

void main() {
  const uint t = gl_GlobalInvocationID.x;
  if (t >= p.tokens) return;
  const uint base = p.logits_off + t * p.n_expert;
  float top = logits[base];
  for (uint e = 1u; e < p.n_expert; ++e) top = max(top, logits[base + e]);
  float sum = 0.0;
  for (uint e = 0u; e < p.n_expert; ++e) sum += exp(logits[base + e] - top);
  int chosen[kMaxUsed];
  float prob[kMaxUsed];
  float kept = 0.0;
  for (uint i = 0u; i < p.k; ++i) {
    int best = -1;
    float best_p = -1.0;
    for (uint e = 0u; e < p.n_expert; ++e) {
      bool taken = false;
      for (uint j = 0u; j < i; ++j) taken = taken || chosen[j] == int(e);
      const float pe = exp(logits[base + e] - top) / sum;
      if (!taken && (best < 0 || pe > best_p)) {  // best < 0: even NaN logits pick an expert
        best = int(e);
        best_p = pe;
      }
    }
    chosen[i] = best;
    prob[i] = best_p;
    kept += best_p;
  }
  for (uint i = 0u; i < p.k; ++i) {
    ids[p.ids_off + t * p.k + i] = chosen[i];
    weights[p.w_off + t * p.k + i] = p.norm != 0u ? prob[i] / kept : prob[i];
  }
}
