#include "model/backends/profiling_backend.h"

#include "gguf/types.h"

namespace ember::model {
namespace {

// "blk.7.ffn_up.weight" → "ffn_up"; "output.weight" → "output".
std::string weight_kind(const Weight& w) {
  std::string name(w.info->name);
  if (name.rfind("blk.", 0) == 0) {
    const size_t dot = name.find('.', 4);
    if (dot != std::string::npos) name = name.substr(dot + 1);
  }
  if (const size_t suffix = name.rfind(".weight"); suffix != std::string::npos)
    name = name.substr(0, suffix);
  return name;
}

double weight_bytes(const Weight& w) {
  return double(gguf::bytes_for(w.type(), w.cols())) * double(w.rows());
}

}  // namespace

void ProfilingBackend::embed(const Weight& table, const std::vector<int32_t>& ids, float scale,
                             Tensor out) {
  const double row = double(gguf::bytes_for(table.type(), table.cols()));
  timed("embed", row * double(ids.size()), [&] { inner_.embed(table, ids, scale, out); });
}

void ProfilingBackend::matmul(const Weight& w, const Tensor& x, Tensor out, int expert) {
  timed("matmul " + weight_kind(w), weight_bytes(w), [&] { inner_.matmul(w, x, out, expert); });
}

void ProfilingBackend::matmul_shared(std::span<const Weight* const> w, const Tensor& x,
                                     std::span<const Tensor> out) {
  std::string name = "matmul ";
  double bytes = 0;
  for (const Weight* weight : w) {
    name += (weight == w.front() ? "" : "+") + weight_kind(*weight);
    bytes += weight_bytes(*weight);
  }
  timed(name, bytes, [&] { inner_.matmul_shared(w, x, out); });
}

void ProfilingBackend::add_bias(Tensor x, const Weight& bias) {
  timed("add_bias", 0, [&] { inner_.add_bias(x, bias); });
}

void ProfilingBackend::rms_norm(const Tensor& x, const Weight& weight, float eps, Tensor out) {
  timed("rms_norm", 0, [&] { inner_.rms_norm(x, weight, eps, out); });
}

void ProfilingBackend::rope(Tensor x, const std::vector<int32_t>& positions, int n_heads,
                            const RopeTable& table, RopeStyle style) {
  timed("rope", 0, [&] { inner_.rope(x, positions, n_heads, table, style); });
}

void ProfilingBackend::add(Tensor x, const Tensor& y) {
  timed("add", 0, [&] { inner_.add(x, y); });
}

void ProfilingBackend::add_scaled_rows(Tensor x, const Tensor& y,
                                       const std::vector<float>& scales) {
  timed("add_scaled_rows", 0, [&] { inner_.add_scaled_rows(x, y, scales); });
}

void ProfilingBackend::glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out) {
  timed("glu", 0, [&] { inner_.glu(gate, up, act, out); });
}

void ProfilingBackend::init_cache(int n_layer, int n_ctx, int n_head_kv, int head_dim,
                                  CacheType type, int n_seq) {
  cache_ = type;
  inner_.init_cache(n_layer, n_ctx, n_head_kv, head_dim, type, n_seq);
}

void ProfilingBackend::store_kv(int layer, const Tensor& k, const Tensor& v,
                                const std::vector<int32_t>& positions,
                                const std::vector<int32_t>& seqs) {
  timed("store_kv", 0, [&] { inner_.store_kv(layer, k, v, positions, seqs); });
}

void ProfilingBackend::attention(int layer, const Tensor& q, const std::vector<int32_t>& positions,
                                 const std::vector<int32_t>& seqs, int n_head, int n_head_kv,
                                 int head_dim, float scale, float softcap, int window, Tensor out) {
  // The keys and values each token reads: its visible positions × K and V × kv heads × head_dim.
  double bytes = 0;
  const double row = double(kv_bytes(cache_, int64_t(n_head_kv) * head_dim));
  for (int32_t p : positions) {
    const double visible = window > 0 ? std::min<double>(p + 1, window) : p + 1;
    bytes += visible * 2 * row;
  }
  timed("attention", bytes, [&] {
    inner_.attention(layer, q, positions, seqs, n_head, n_head_kv, head_dim, scale, softcap, window,
                     out);
  });
}

void ProfilingBackend::moe_ffn(const LayerWeights& w, const HyperParams& hp, const Tensor& x,
                               const Tensor& router_logits, Tensor out) {
  timed("moe_ffn", 0, [&] { inner_.moe_ffn(w, hp, x, router_logits, out); });
}

void ProfilingBackend::scale_rows_sigmoid(Tensor x, const Tensor& gate) {
  timed("scale_rows_sigmoid", 0, [&] { inner_.scale_rows_sigmoid(x, gate); });
}

void ProfilingBackend::copy_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor out) {
  timed("copy_rows", 0, [&] { inner_.copy_rows(x, rows, out); });
}

void ProfilingBackend::read_rows(const Tensor& t, int64_t first, int64_t count, float* host) {
  timed("read_rows", 0, [&] { inner_.read_rows(t, first, count, host); });
}

void ProfilingBackend::write_rows(Tensor t, const float* host) {
  timed("write_rows", 0, [&] { inner_.write_rows(t, host); });
}

}  // namespace ember::model
