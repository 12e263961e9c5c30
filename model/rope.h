// RoPE as one table per layer kind: the angle per position of each rotated pair and a magnitude,
// computed once when a model loads from its hyper-parameters and factor tensors. Every RoPE
// variant ember reads (plain, Llama 3's rope_freqs, linear scaling, YaRN, LongRoPE factors and
// attn_factor, partial rotation) becomes such a table, so each backend implements one op:
//   x[a], x[b] ← (x[a]·cos θ − x[b]·sin θ)·m, (x[a]·sin θ + x[b]·cos θ)·m,  θ =
//   position·inv_freq[i]
// with (a, b) = (2i, 2i+1) (normal) or (i, i + n_rot/2) (NEOX), i < n_rot/2.
// Formulas: YaRN (Peng et al. 2023, arXiv:2309.00071) as llama.cpp implements it (ggml's
// rope_yarn: ramp over the correction dimensions, magnitude 1 + 0.1·ln(factor)); LongRoPE
// (Phi-3) factor lists as divisors of the frequencies.
#pragma once

#include <vector>

#include "model/hparams.h"

namespace ember::model {

struct RopeTable {
  std::vector<double> inv_freq;  // radians per position of pair i; n_rot / 2 entries
  float mscale = 1;              // multiplies cos and sin
  int n_rot() const { return static_cast<int>(inv_freq.size()) * 2; }
};

// The table for layers with RoPE base `base`. `factors` (n_rot / 2 floats, or null) divide the
// frequencies (rope_freqs.weight, rope_factors_*.weight); `scaled` applies the file's RoPE
// scaling (global layers; gemma3's local layers rotate unscaled).
RopeTable make_rope_table(const HyperParams& hp, float base, const float* factors, bool scaled);

}  // namespace ember::model
