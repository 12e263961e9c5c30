// A Backend that runs another one and times every call, by kind of operation — matrix products
// by the weight they read ("matmul attn_q", "matmul output", ...) with the bytes of it — for
// `ember bench e2e --profile`: where a generated token's time goes. Only meaningful over a
// synchronous backend (the CPU's): a device backend queues work and returns at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/backend.h"

namespace ember::model {

class ProfilingBackend final : public Backend {
 public:
  struct Op {
    uint64_t calls = 0;
    double seconds = 0;
    double bytes = 0;  // weight bytes read (matrix products, embeddings), KV bytes (attention)
  };

  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}
  const std::map<std::string, Op>& ops() const { return ops_; }
  void clear() { ops_.clear(); }

  size_t max_tensor_bytes() const override { return inner_.max_tensor_bytes(); }
  Tensor alloc(int64_t rows, int64_t cols) override { return inner_.alloc(rows, cols); }
  void reset_scratch() override { inner_.reset_scratch(); }
  size_t scratch_mark() const override { return inner_.scratch_mark(); }
  void scratch_rewind(size_t mark) override { inner_.scratch_rewind(mark); }
  void embed(const Weight& table, const std::vector<int32_t>& ids, float scale,
             Tensor out) override;
  void matmul(const Weight& w, const Tensor& x, Tensor out, int expert = -1) override;
  void matmul_shared(std::span<const Weight* const> w, const Tensor& x,
                     std::span<const Tensor> out) override;
  void add_bias(Tensor x, const Weight& bias) override;
  void rms_norm(const Tensor& x, const Weight& weight, float eps, Tensor out) override;
  void rope(Tensor x, const std::vector<int32_t>& positions, int n_heads, const RopeTable& table,
            RopeStyle style) override;
  void add(Tensor x, const Tensor& y) override;
  void add_scaled_rows(Tensor x, const Tensor& y, const std::vector<float>& scales) override;
  void glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out) override;
  void init_cache(int n_layer, int n_ctx, int n_head_kv, int head_dim, CacheType type,
                  int n_seq) override;
  void store_kv(int layer, const Tensor& k, const Tensor& v, const std::vector<int32_t>& positions,
                const std::vector<int32_t>& seqs) override;
  void attention(int layer, const Tensor& q, const std::vector<int32_t>& positions,
                 const std::vector<int32_t>& seqs, int n_head, int n_head_kv, int head_dim,
                 float scale, float softcap, int window, Tensor out) override;
  void moe_ffn(const LayerWeights& w, const HyperParams& hp, const Tensor& x,
               const Tensor& router_logits, Tensor out) override;
  void scale_rows_sigmoid(Tensor x, const Tensor& gate) override;
  void copy_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor out) override;
  void read_rows(const Tensor& t, int64_t first, int64_t count, float* host) override;
  void write_rows(Tensor t, const float* host) override;

 private:
  // Runs `call`, adding its time (and `bytes`) to the op `name`.
  template <typename F>
  void timed(const std::string& name, double bytes, F&& call) {
    const auto start = std::chrono::steady_clock::now();
    call();
    Op& op = ops_[name];
    op.calls++;
    op.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    op.bytes += bytes;
  }

  Backend& inner_;
  std::map<std::string, Op> ops_;
  CacheType cache_ = CacheType::kF16;
};

}  // namespace ember::model
