#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ember::model {
namespace {

// The pair index from which YaRN's ramp starts or ends: where a rotation of n_rot_beta turns
// fits the original context (ggml's ggml_rope_yarn_corr_dim).
double yarn_corr_dim(int n_rot, int ctx_orig, double beta, double base) {
  return n_rot * std::log(ctx_orig / (beta * 2 * std::numbers::pi)) / (2 * std::log(base));
}

}  // namespace

RopeTable make_rope_table(const HyperParams& hp, float base, const float* factors, bool scaled) {
  RopeTable t;
  const int half = hp.n_rot / 2;
  t.inv_freq.resize(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    t.inv_freq[i] = std::pow(static_cast<double>(base), -2.0 * i / hp.n_rot);
    if (factors) t.inv_freq[i] /= factors[i];
  }
  t.mscale = hp.rope_attn_factor;
  if (!scaled) return t;
  if (hp.rope_scaling == RopeScaling::kLinear) {
    for (double& f : t.inv_freq) f /= hp.rope_factor;
  } else if (hp.rope_scaling == RopeScaling::kYarn) {
    // Pairs below `low` turn fast enough to keep their original angles (extrapolation), pairs
    // above `high` are interpolated (× 1/factor), the ones between mix along a linear ramp.
    const double low = std::max(
        0.0, std::floor(yarn_corr_dim(hp.n_rot, hp.rope_ctx_orig, hp.yarn_beta_fast, base)));
    const double high =
        std::min(hp.n_rot - 1.0,
                 std::ceil(yarn_corr_dim(hp.n_rot, hp.rope_ctx_orig, hp.yarn_beta_slow, base)));
    const double freq_scale = 1.0 / hp.rope_factor;
    for (int i = 0; i < half; ++i) {
      const double y = (i - low) / std::max(0.001, high - low);
      const double extrapolate = 1.0 - std::clamp(y, 0.0, 1.0);
      t.inv_freq[i] *= freq_scale * (1 - extrapolate) + extrapolate;
    }
    t.mscale *= static_cast<float>(1.0 + 0.1 * std::log(hp.rope_factor));
  }
  return t;
}

}  // namespace ember::model
