// The operations the forward pass needs, implemented once per device (CPU now; Vulkan and
// OpenCL next). Activations and the KV cache live where the backend keeps them and are named by
// Tensor handles; the forward pass never reads them on the host except for the final logits
// (read_rows), so a device backend can queue every op without round trips.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "model/cache_type.h"
#include "model/hparams.h"
#include "model/rope.h"
#include "model/weights.h"

namespace ember::model {

// A [rows, cols] float32 matrix in backend memory (row-major), as an opaque handle: the CPU
// backend sets `data` (a host address); a device backend sets `buffer` and `offset` (which of
// its activation buffers, and the element offset in it). Only the backend that made a tensor
// reads these fields.
struct Tensor {
  float* data = nullptr;
  uint32_t buffer = 0;
  uint64_t offset = 0;  // elements
  int64_t rows = 0, cols = 0;
  // The same memory seen as [rows·cols / cols_view, cols_view] (e.g. one row per attention head).
  Tensor reshaped(int64_t cols_view) const {
    Tensor t = *this;
    t.rows = rows * cols / cols_view;
    t.cols = cols_view;
    return t;
  }
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The largest tensor alloc() gives (a device's buffer limit; unlimited on the CPU).
  virtual size_t max_tensor_bytes() const { return SIZE_MAX; }
  // Scratch activations, valid until reset_scratch(), or until scratch_rewind() to a mark taken
  // before they were allocated (the forward pass rewinds after every layer).
  virtual Tensor alloc(int64_t rows, int64_t cols) = 0;
  virtual void reset_scratch() = 0;
  virtual size_t scratch_mark() const = 0;
  virtual void scratch_rewind(size_t mark) = 0;

  // out[i] = row ids[i] of the embedding table, times `scale`.
  virtual void embed(const Weight& table, const std::vector<int32_t>& ids, float scale,
                     Tensor out) = 0;
  // out[t] = W·x[t] (+ bias). With `expert` ≥ 0, W is that expert's slice of a 3-D tensor.
  virtual void matmul(const Weight& w, const Tensor& x, Tensor out, int expert = -1) = 0;
  // out[i] = w[i]·x for weights that share the input x (q, k and v; gate and up), with matmul's
  // results; w and out have the same length. A backend may run them as one product (the CPU
  // quantises x once and wakes its threads once); by default they run one after another.
  virtual void matmul_shared(std::span<const Weight* const> w, const Tensor& x,
                             std::span<const Tensor> out) {
    for (size_t i = 0; i < w.size(); ++i) matmul(*w[i], x, out[i]);
  }
  virtual void add_bias(Tensor x, const Weight& bias) = 0;
  // Each row of x divided by its RMS, times the weight vector.
  virtual void rms_norm(const Tensor& x, const Weight& weight, float eps, Tensor out) = 0;
  // Rotates the first table.n_rot() dimensions of each head row of x (rows: tokens × heads, in
  // token order): pair i by position·table.inv_freq[i], cos and sin times table.mscale (rope.h).
  virtual void rope(Tensor x, const std::vector<int32_t>& positions, int n_heads,
                    const RopeTable& table, RopeStyle style) = 0;
  virtual void add(Tensor x, const Tensor& y) = 0;  // x += y
  // x[t] += scales[t] · y[t] for every row t (rows whose scale is 0 are left alone).
  virtual void add_scaled_rows(Tensor x, const Tensor& y, const std::vector<float>& scales) = 0;
  // out = act(gate) · up, element-wise.
  virtual void glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out) = 0;

  // KV cache for `n_seq` independent sequences, each `n_layer` layers of `n_ctx` positions ×
  // n_head_kv heads × head_dim values. Memory is only touched as positions are written.
  virtual void init_cache(int n_layer, int n_ctx, int n_head_kv, int head_dim, CacheType type,
                          int n_seq) = 0;
  // Row t of k and v goes to position positions[t] of sequence seqs[t].
  virtual void store_kv(int layer, const Tensor& k, const Tensor& v,
                        const std::vector<int32_t>& positions,
                        const std::vector<int32_t>& seqs) = 0;
  // Causal attention of q (tokens × n_head·head_dim), token t over the cached positions ≤
  // positions[t] of its own sequence seqs[t], limited to the last `window` positions when
  // window > 0; GQA groups query heads per kv head. Scores are q·k·scale, then, when
  // softcap > 0, softcap·tanh(score / softcap).
  virtual void attention(int layer, const Tensor& q, const std::vector<int32_t>& positions,
                         const std::vector<int32_t>& seqs, int n_head, int n_head_kv, int head_dim,
                         float scale, float softcap, int window, Tensor out) = 0;

  // Mixture of experts, on the rows of x: top-k softmax routing from `router_logits` (rows ×
  // n_expert), optionally renormalised; then for every expert the rows routed to it go through
  // its FFN together and are added into `out` with their weights.
  virtual void moe_ffn(const LayerWeights& w, const HyperParams& hp, const Tensor& x,
                       const Tensor& router_logits, Tensor out) = 0;
  // x[t] *= sigmoid(gate[t]) for a [rows, 1] gate.
  virtual void scale_rows_sigmoid(Tensor x, const Tensor& gate) = 0;

  // out[i] = row rows[i] of x.
  virtual void copy_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor out) = 0;
  // Copies rows [first, first + count) of t to the host.
  virtual void read_rows(const Tensor& t, int64_t first, int64_t count, float* host) = 0;
  // Copies t.rows rows from the host into t (activations crossing between two backends).
  virtual void write_rows(Tensor t, const float* host) = 0;
};

}  // namespace ember::model
