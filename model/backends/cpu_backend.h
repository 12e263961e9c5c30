// The CPU backend: activations in host memory, matrix products through kernels/cpu on a
// persistent thread pool, the KV cache in F16 (default) or F32.
#pragma once

#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <tuple>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/thread_pool.h"
#include "model/backend.h"
#include "model/backends/scratch_arena.h"

namespace ember::model {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int n_threads);
  // A backend on another's threads (a draft model run in turn with its target's: a second pool
  // would spin against the first), with its own KV cache and scratch.
  explicit CpuBackend(std::shared_ptr<cpu::ThreadPool> pool);

  Tensor alloc(int64_t rows, int64_t cols) override;
  void reset_scratch() override;
  size_t scratch_mark() const override;
  void scratch_rewind(size_t mark) override;
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

  cpu::ThreadPool& pool() { return *pool_; }
  // Whether weights whose kernels have an interleaved layout are rewritten into it (default on;
  // off: the mapped layout throughout, for benchmarks side by side).
  void set_interleave(bool on) { interleave_ = on; }
  const std::shared_ptr<cpu::ThreadPool>& shared_pool() const { return pool_; }

 private:
  // A weight's data as the matrix products read it: in its kernels' interleaved layout
  // (kernels.h) where they have one — rewritten the first time it is used, after which the
  // mapped pages it came from are handed back to the kernel (the copy takes their place in
  // memory) — else as mapped.
  cpu::MatmulPart operand(const Weight& w, float* y);

  // Where position `pos` of KV head `head` of sequence `seq` lives in one layer's cache.
  uint8_t* cache_row(const std::unique_ptr<uint8_t[]>& layer_cache, int seq, int head,
                     int pos) const;

  std::shared_ptr<cpu::ThreadPool> pool_;
  const cpu::VectorOps& vector_ops_;
  const cpu::TypeKernels& q8_0_;  // quantises rows of a q8_0 KV cache
  cpu::AttentionFn attention_kernel_;
  std::vector<cpu::AttentionScratch> attention_scratch_;  // one per thread
  cpu::MatmulScratch matmul_scratch_;
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  // Interleaved copies of weights, by their mapped data and shape (a slice of a fused tensor
  // starts where the tensor does).
  std::map<std::tuple<const uint8_t*, int64_t, int64_t>, std::unique_ptr<uint8_t, FreeDeleter>>
      interleaved_;

  // The cos and sin of the last positions each RoPE table was applied at: a step applies the
  // same table at the same positions twice per layer (q and k), and in every layer.
  struct RopeAngles {
    RopeTable table;  // a copy: the key, not a pointer that a later model's table could reuse
    std::vector<int32_t> positions;
    std::vector<float> cos, sin;  // positions.size() × n_rot / 2
  };
  const RopeAngles& rope_angles(const RopeTable& table, const std::vector<int32_t>& positions);
  RopeAngles rope_angles_[2];  // gemma3 alternates a local and a global table

  bool interleave_ = true;
  ScratchArena scratch_;  // activations, in chunks_
  std::vector<std::unique_ptr<float[]>> chunks_;
  // KV cache: per layer, n_seq × n_head_kv × n_ctx rows of head_dim values (F16 bits, floats or
  // Q8_0 blocks): each head's positions follow one another, so attention over one head reads
  // one contiguous run, which the hardware prefetcher streams (rows of all heads side by side
  // gave it 128 of every n_head_kv · 128 bytes: 13-17 GB/s on one core against 39 contiguous).
  // Allocated without being written so that the pages of unused positions stay untouched.
  CacheType cache_type_ = CacheType::kF16;
  int n_ctx_ = 0, n_head_kv_ = 0, head_dim_ = 0, n_seq_ = 0;
  std::vector<std::unique_ptr<uint8_t[]>> k_cache_, v_cache_;
};

}  // namespace ember::model
