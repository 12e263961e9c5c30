// The device backend: the forward pass on a GPU (or a CPU-type device such as lavapipe or PoCL
// in CI) through kernels launched on a ComputeDevice (compute_device.h): Vulkan compute shaders
// (vulkan_backend.h) or OpenCL C kernels (opencl_backend.h), written once here for both.
//
// Memory. Weights are copied to device buffers the first time an op uses them, each tensor in
// as many buffers as maxStorageBufferRange requires (2-D tensors split by rows, expert tensors
// by whole experts). Activations come from device buffers of up to 64 MiB that are kept between
// steps and rewound like the CPU backend's scratch; a Tensor names one of them and an element
// offset. Small per-step host data (token ids, positions, the RoPE cos/sin rows, LoRA scales)
// goes to host-visible upload buffers. The KV cache is one buffer per layer and sequence, F16 or
// F32, created when a layer first stores into it (layers placed on the CPU never do).
//
// Synchronisation. Every op is one kernel launch queued in order (Vulkan: recorded into one
// command buffer with a barrier before it); nothing runs until the logits are read (read_rows) or
// the step ends (reset_scratch), so a decode is one submission and one read-back.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/backend.h"
#include "model/backends/compute_device.h"
#include "model/backends/scratch_arena.h"

namespace ember::model {

class DeviceBackend : public Backend {
 public:
  // `max_weight_buffer` lowers the largest buffer a weight may use below the device's limit
  // (0: that limit); tests lower it to reach the splitting.
  explicit DeviceBackend(std::unique_ptr<ComputeDevice> device, size_t max_weight_buffer = 0);
  ~DeviceBackend() override;

  const ComputeDevice::Limits& limits() const { return device_->limits(); }
  ComputeDevice& compute_device() const { return *device_; }
  // Bytes of weights in device memory so far.
  uint64_t weight_bytes() const { return weight_bytes_; }

  size_t max_tensor_bytes() const override { return std::min(kChunkBytes, max_range_); }
  Tensor alloc(int64_t rows, int64_t cols) override;
  void reset_scratch() override;
  size_t scratch_mark() const override;
  void scratch_rewind(size_t mark) override;
  void embed(const Weight& table, const std::vector<int32_t>& ids, float scale,
             Tensor out) override;
  void matmul(const Weight& w, const Tensor& x, Tensor out, int expert = -1) override;
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
  static constexpr size_t kChunkBytes = size_t(64) << 20;  // activation buffers
  using BufferPtr = std::unique_ptr<DeviceBuffer>;
  // A tensor in device memory: parts holding rows (2-D) or experts (3-D) [first, first + count).
  struct DeviceWeight {
    struct Part {
      BufferPtr buffer;
      int64_t first = 0, count = 0;
    };
    std::vector<Part> parts;
    const uint8_t* data = nullptr;  // what was copied (to tell a tensor from a successor
    uint64_t bytes = 0;             // at the same address)
    std::string format;             // the shaders' suffix: "q4_k", "f16", ...
    int64_t row_bytes = 0;          // bytes per row
    int64_t rows = 0;               // rows per matrix (per expert for 3-D tensors)
    bool experts = false;           // split by experts rather than rows
  };
  // Host data placed for this step: the buffer and the word offset in it.
  struct Staged {
    DeviceBuffer* buffer;
    uint32_t offset;
  };

  const DeviceWeight& weight(const Weight& w);
  Staged stage(const void* data, size_t bytes);
  DeviceBuffer& buffer(const Tensor& t) const { return *chunks_[t.buffer]; }
  // Records one dispatch of shader `name` (binding `buffers`, pushing `push`).
  template <class Push>
  void dispatch(const std::string& name, std::initializer_list<const DeviceBuffer*> buffers,
                const Push& push, uint32_t gx, uint32_t gy = 1);
  // Workgroups for an element-wise op over n items (one per invocation, strided past 65535).
  uint32_t groups_for(uint64_t n) const;
  // Positions as a table of (cos, sin) per token and rotated pair, kept for the step.
  Staged rope_rows(const RopeTable& table, const std::vector<int32_t>& positions);
  // W·x for every (token, slot) pair of a MoE layer (mul_mat_id): expert ids[pair], input row
  // x[pair / x_div].
  void matmul_experts(const Weight& w, const Tensor& x, int x_div, const Tensor& ids, Tensor out);

  std::unique_ptr<ComputeDevice> device_;
  size_t max_range_ = 0;     // the device's largest buffer, bytes
  size_t weight_range_ = 0;  // the largest weight buffer
  std::unordered_map<const gguf::TensorInfo*, DeviceWeight> weights_;
  uint64_t weight_bytes_ = 0;
  ScratchArena scratch_;  // activations, in chunks_
  std::vector<BufferPtr> chunks_;
  std::vector<BufferPtr> uploads_;  // host-visible, for Staged data
  size_t upload_used_ = 0;          // bytes used in uploads_.back()
  std::map<std::pair<const RopeTable*, std::vector<int32_t>>, Staged> rope_rows_;
  // KV cache: buffer [layer · n_seq + seq] for keys and for values.
  std::vector<BufferPtr> k_cache_, v_cache_;
  CacheType cache_type_ = CacheType::kF16;
  int n_ctx_ = 0, kv_dim_ = 0, n_seq_ = 0;
};

}  // namespace ember::model
