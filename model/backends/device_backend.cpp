#include "model/backends/device_backend.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ember::model {
namespace {

constexpr size_t kUploadBytes = size_t(1) << 20;  // per-step host data
constexpr uint32_t kMaxGroups = 65535;            // maxComputeWorkGroupCount's guaranteed minimum
constexpr uint32_t kMulMatTile = 8;               // tokens per workgroup of mul_mat.comp
constexpr int kMaxExpertsUsed = 16;               // moe_route.comp's limit

// Push constants, as the .comp files declare them (std430: 4-byte members in order).
struct MulMatPush {
  uint32_t rows, cols, row_bytes, w_row0, tokens, x_off, x_stride, y_off, y_stride;
  uint32_t x_div, ids_off, expert_first, expert_count, expert_bytes;
};
struct GetRowsPush {
  uint32_t n, cols, row_bytes, row_first, row_count, y_off, ids_off;
  float scale;
};
struct RmsNormPush {
  uint32_t rows, cols, x_off, y_off, w_off;
  float eps;
};
struct RopePush {
  uint32_t tokens, n_heads, head_dim, half, x_off, x_stride, tab_off, neox;
};
struct GluPush {
  uint32_t n, g_off, u_off, y_off, gelu;
};
struct AddPush {
  uint32_t rows, cols, x_off, y_off, y_stride, s_off, scaled;
};
struct ScaleRowsPush {
  uint32_t rows, cols, x_off, g_off;
};
struct CopyRowsPush {
  uint32_t n, cols, x_off, y_off, idx_off;
};
struct StoreKvPush {
  uint32_t tokens, kv_dim, src_off, src_stride, pos_off, f16;
};
struct AttentionPush {
  uint32_t group, head_dim, kv_dim, q_off, q_stride, y_off, y_stride, pos_off, window, f16;
  float scale, softcap;
};
struct MoeRoutePush {
  uint32_t tokens, n_expert, k, norm, logits_off, ids_off, w_off;
};
struct MoeCombinePush {
  uint32_t tokens, cols, k, down_off, w_off, y_off;
};

uint32_t u32(int64_t v) {
  if (v < 0 || v > int64_t(UINT32_MAX))
    throw std::runtime_error("a device kernel argument (" + std::to_string(v) +
                             ") does not fit in 32 bits");
  return static_cast<uint32_t>(v);
}

// Runs of consecutive batch entries of one sequence: [first, end).
std::vector<std::pair<size_t, size_t>> sequence_runs(const std::vector<int32_t>& seqs) {
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t t = 0; t < seqs.size();) {
    size_t e = t + 1;
    while (e < seqs.size() && seqs[e] == seqs[t]) ++e;
    runs.emplace_back(t, e);
    t = e;
  }
  return runs;
}

}  // namespace

DeviceBackend::DeviceBackend(std::unique_ptr<ComputeDevice> device, size_t max_weight_buffer)
    : device_(std::move(device)) {
  max_range_ = device_->limits().max_buffer_bytes;
  weight_range_ = max_weight_buffer > 0 ? std::min(max_range_, max_weight_buffer) : max_range_;
}

DeviceBackend::~DeviceBackend() = default;

template <class Push>
void DeviceBackend::dispatch(const std::string& name,
                             std::initializer_list<const DeviceBuffer*> buffers, const Push& push,
                             uint32_t gx, uint32_t gy) {
  const ComputeDevice::Limits& l = device_->limits();
  device_->launch(name, buffers, &push, sizeof push, gx, gy,
                  name == "attention" ? l.attention_workgroup : l.workgroup);
}

uint32_t DeviceBackend::groups_for(uint64_t n) const {
  const uint32_t w = device_->limits().workgroup;
  return static_cast<uint32_t>(std::clamp<uint64_t>((n + w - 1) / w, 1, kMaxGroups));
}

const DeviceBackend::DeviceWeight& DeviceBackend::weight(const Weight& w) {
  auto it = weights_.find(w.info);
  // The same tensor, not another one that took its place in memory since.
  if (it != weights_.end() && it->second.data == w.info->data && it->second.bytes == w.info->bytes)
    return it->second;
  if (it != weights_.end()) {
    weight_bytes_ -= it->second.bytes;
    weights_.erase(it);
  }
  const gguf::TensorInfo& info = *w.info;
  DeviceWeight d;
  d.data = info.data;
  d.bytes = info.bytes;
  d.format = std::string(gguf::type_name(info.type));
  std::transform(d.format.begin(), d.format.end(), d.format.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  d.row_bytes = static_cast<int64_t>(gguf::bytes_for(info.type, info.shape[0]));
  d.rows = static_cast<int64_t>(info.shape[1]);
  d.experts = info.n_dims >= 3;
  // What one unit of splitting holds: a row, or a whole expert's matrix.
  const int64_t unit = d.experts ? d.row_bytes * d.rows : d.row_bytes;
  const int64_t units = d.experts ? static_cast<int64_t>(info.shape[2]) : d.rows;
  const int64_t per_part = static_cast<int64_t>(weight_range_ - 16) / unit;
  if (per_part < 1)
    throw std::runtime_error("tensor '" + std::string(info.name) + "' has " +
                             (d.experts ? "an expert" : "a row") + " of " + std::to_string(unit) +
                             " bytes, more than this device's storage buffer range of " +
                             std::to_string(weight_range_) + " bytes");
  for (int64_t first = 0; first < units; first += per_part) {
    const int64_t count = std::min(per_part, units - first);
    const size_t bytes = static_cast<size_t>(count * unit);
    DeviceWeight::Part part{device_->buffer(bytes + 4), first,
                            count};  // + the word dequant may read
    device_->write(*part.buffer, info.data + first * unit, bytes, 0);
    d.parts.push_back(std::move(part));
  }
  weight_bytes_ += d.bytes;
  return weights_.emplace(w.info, std::move(d)).first->second;
}

DeviceBackend::Staged DeviceBackend::stage(const void* data, size_t bytes) {
  const size_t padded = (std::max<size_t>(bytes, 4) + 15) / 16 * 16;
  if (uploads_.empty() || upload_used_ + padded > uploads_.back()->size()) {
    uploads_.push_back(device_->buffer(std::max(padded, kUploadBytes), true));
    upload_used_ = 0;
  }
  device_->write(*uploads_.back(), data, bytes, upload_used_);
  Staged s{uploads_.back().get(), static_cast<uint32_t>(upload_used_ / 4)};
  upload_used_ += padded;
  return s;
}

Tensor DeviceBackend::alloc(int64_t rows, int64_t cols) {
  const ScratchArena::Place p = scratch_.place(static_cast<size_t>(rows * cols), [&](size_t n) {
    const size_t floats = std::max(n, max_tensor_bytes() / 4);
    if (floats * 4 > max_range_)
      throw std::runtime_error("an activation of " + std::to_string(rows) + " × " +
                               std::to_string(cols) +
                               " floats is larger than this device's storage buffer range (" +
                               std::to_string(max_range_) + " bytes); use a smaller batch");
    chunks_.push_back(device_->buffer(floats * 4));
    return floats;
  });
  Tensor t;
  t.buffer = static_cast<uint32_t>(p.chunk);
  t.offset = p.offset;
  t.rows = rows;
  t.cols = cols;
  return t;
}

void DeviceBackend::reset_scratch() {
  device_->finish();  // what was queued reads the uploads and scratch about to be reused
  scratch_rewind(0);
  upload_used_ = 0;
  if (uploads_.size() > 1) uploads_.erase(uploads_.begin(), uploads_.end() - 1);
  rope_rows_.clear();
}

// Rewinding while dispatches are recorded is safe: the device runs them in order with barriers
// between.
size_t DeviceBackend::scratch_mark() const {
  return scratch_.mark();
}

void DeviceBackend::scratch_rewind(size_t mark) {
  scratch_.rewind(mark);
}

void DeviceBackend::embed(const Weight& table, const std::vector<int32_t>& ids, float scale,
                          Tensor out) {
  for (int32_t id : ids)
    if (id < 0 || id >= table.rows())
      throw std::runtime_error("token id " + std::to_string(id) + " is outside the vocabulary");
  const DeviceWeight& d = weight(table);
  const Staged staged = stage(ids.data(), ids.size() * sizeof(int32_t));
  for (size_t first = 0; first < ids.size(); first += kMaxGroups) {
    const size_t n = std::min<size_t>(kMaxGroups, ids.size() - first);
    for (const auto& part : d.parts) {
      GetRowsPush p{u32(n),
                    u32(table.cols()),
                    u32(d.row_bytes),
                    u32(part.first),
                    u32(part.count),
                    u32(out.offset + first * out.cols),
                    u32(staged.offset + first),
                    scale};
      dispatch("get_rows_" + d.format, {part.buffer.get(), &buffer(out), staged.buffer}, p, u32(n));
    }
  }
}

void DeviceBackend::matmul(const Weight& w, const Tensor& x, Tensor out, int expert) {
  const DeviceWeight& d = weight(w);
  MulMatPush p{};
  p.cols = u32(w.cols());
  p.row_bytes = u32(d.row_bytes);
  p.tokens = u32(x.rows);
  p.x_off = u32(x.offset);
  p.x_stride = u32(x.cols);
  p.y_stride = u32(out.cols);
  p.x_div = 1;
  // Tokens in dispatches of at most kMaxGroups tiles (maxComputeWorkGroupCount[1]).
  const int64_t per_dispatch = int64_t(kMaxGroups) * kMulMatTile;
  for (int64_t first = 0; first < x.rows; first += per_dispatch)
    for (const auto& part : d.parts) {
      const int64_t count = std::min(per_dispatch, x.rows - first);
      p.tokens = u32(count);
      p.x_off = u32(x.offset + first * x.cols);
      int64_t a, b, row0;  // rows [a, b) of the output, from row `row0` of the part
      if (d.experts) {
        if (expert < part.first || expert >= part.first + part.count) continue;
        a = 0;
        b = w.rows();
        row0 = (expert - part.first) * d.rows;
      } else {
        a = std::max(w.first_row, part.first);
        b = std::min(w.first_row + w.rows(), part.first + part.count);
        if (a >= b) continue;
        row0 = a - part.first;
        a -= w.first_row;
        b -= w.first_row;
      }
      p.rows = u32(b - a);
      p.w_row0 = u32(row0);
      p.y_off = u32(out.offset + first * out.cols + a);
      dispatch("mul_mat_" + d.format, {part.buffer.get(), &buffer(x), &buffer(out)}, p,
               std::min<uint32_t>(p.rows, kMaxGroups),
               u32((count + kMulMatTile - 1) / kMulMatTile));
    }
}

void DeviceBackend::matmul_experts(const Weight& w, const Tensor& x, int x_div, const Tensor& ids,
                                   Tensor out) {
  const DeviceWeight& d = weight(w);
  MulMatPush p{};
  p.rows = u32(d.rows);
  p.cols = u32(w.cols());
  p.row_bytes = u32(d.row_bytes);
  p.tokens = u32(out.rows);
  p.x_off = u32(x.offset);
  p.x_stride = u32(x.cols);
  p.y_off = u32(out.offset);
  p.y_stride = u32(out.cols);
  p.x_div = u32(x_div);
  p.ids_off = u32(ids.offset);
  p.expert_bytes = u32(d.rows * d.row_bytes);
  // Pairs in dispatches of at most kMaxGroups, starting on a token's first pair.
  const int64_t per_dispatch = int64_t(kMaxGroups / x_div) * x_div;
  for (int64_t first = 0; first < out.rows; first += per_dispatch) {
    const int64_t count = std::min(per_dispatch, out.rows - first);
    p.tokens = u32(count);
    p.x_off = u32(x.offset + first / x_div * x.cols);
    p.y_off = u32(out.offset + first * out.cols);
    p.ids_off = u32(ids.offset + first);
    for (const auto& part : d.parts) {
      p.expert_first = u32(part.first);
      p.expert_count = u32(part.count);
      dispatch("mul_mat_id_" + d.format,
               {part.buffer.get(), &buffer(x), &buffer(out), &buffer(ids)}, p,
               std::min<uint32_t>(p.rows, kMaxGroups), u32(count));
    }
  }
}

void DeviceBackend::add_bias(Tensor x, const Weight& bias) {
  const DeviceWeight& d = weight(bias);
  AddPush p{u32(x.rows), u32(x.cols), u32(x.offset), 0, 0, 0, 0};
  dispatch("add", {&buffer(x), d.parts[0].buffer.get(), &buffer(x)}, p,
           groups_for(uint64_t(x.rows) * x.cols));
}

void DeviceBackend::rms_norm(const Tensor& x, const Weight& weight_vector, float eps, Tensor out) {
  const DeviceWeight& d = weight(weight_vector);
  RmsNormPush p{u32(x.rows), u32(x.cols), u32(x.offset), u32(out.offset), 0, eps};
  dispatch("rms_norm", {&buffer(x), &buffer(out), d.parts[0].buffer.get()}, p,
           std::min<uint32_t>(u32(x.rows), kMaxGroups));
}

DeviceBackend::Staged DeviceBackend::rope_rows(const RopeTable& table,
                                               const std::vector<int32_t>& positions) {
  // The forward pass passes one positions vector to every layer: computed once per step.
  auto key = std::make_pair(&table, positions);
  if (auto it = rope_rows_.find(key); it != rope_rows_.end()) return it->second;
  const int half = table.n_rot() / 2;
  std::vector<float> rows(positions.size() * half * 2);
  for (size_t t = 0; t < positions.size(); ++t)
    for (int i = 0; i < half; ++i) {
      const double theta = positions[t] * table.inv_freq[i];
      rows[(t * half + i) * 2] = static_cast<float>(std::cos(theta)) * table.mscale;
      rows[(t * half + i) * 2 + 1] = static_cast<float>(std::sin(theta)) * table.mscale;
    }
  return rope_rows_[key] = stage(rows.data(), rows.size() * sizeof(float));
}

void DeviceBackend::rope(Tensor x, const std::vector<int32_t>& positions, int n_heads,
                         const RopeTable& table, RopeStyle style) {
  if (table.n_rot() == 0) return;
  const Staged rows = rope_rows(table, positions);
  RopePush p{u32(positions.size()), u32(n_heads),
             u32(x.cols / n_heads), u32(table.n_rot() / 2),
             u32(x.offset),         u32(x.cols),
             rows.offset,           style == RopeStyle::kNeox ? 1u : 0u};
  dispatch("rope", {&buffer(x), rows.buffer}, p,
           groups_for(uint64_t(positions.size()) * n_heads * p.half));
}

void DeviceBackend::add(Tensor x, const Tensor& y) {
  AddPush p{u32(x.rows), u32(x.cols), u32(x.offset), u32(y.offset), u32(x.cols), 0, 0};
  dispatch("add", {&buffer(x), &buffer(y), &buffer(y)}, p, groups_for(uint64_t(x.rows) * x.cols));
}

void DeviceBackend::add_scaled_rows(Tensor x, const Tensor& y, const std::vector<float>& scales) {
  const Staged s = stage(scales.data(), scales.size() * sizeof(float));
  AddPush p{u32(x.rows), u32(x.cols), u32(x.offset), u32(y.offset), u32(x.cols), s.offset, 1};
  dispatch("add", {&buffer(x), &buffer(y), s.buffer}, p, groups_for(uint64_t(x.rows) * x.cols));
}

void DeviceBackend::glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out) {
  const uint64_t n = uint64_t(gate.rows) * gate.cols;
  GluPush p{u32(n), u32(gate.offset), u32(up.offset), u32(out.offset),
            act == Activation::kSilu ? 0u : 1u};
  dispatch("glu", {&buffer(gate), &buffer(up), &buffer(out)}, p, groups_for(n));
}

void DeviceBackend::init_cache(int n_layer, int n_ctx, int n_head_kv, int head_dim, CacheType type,
                               int n_seq) {
  const int kv_dim = n_head_kv * head_dim;
  if (kv_dim % 2 != 0)
    throw std::runtime_error("the device backend needs an even KV width, not " +
                             std::to_string(kv_dim));
  if (type == CacheType::kQ8_0)
    throw std::runtime_error(
        "the q8_0 KV cache runs on the CPU backend only for now: use --cache-type f16 with "
        "this device, or --backend cpu");
  cache_type_ = type;
  n_ctx_ = n_ctx;
  kv_dim_ = kv_dim;
  n_seq_ = n_seq;
  const size_t bytes = size_t(n_ctx) * kv_bytes(type, kv_dim);
  if (bytes > max_range_)
    throw std::runtime_error(
        "one sequence's KV cache for one layer needs " + std::to_string(bytes >> 20) +
        " MiB, more than this device's storage buffer range (" + std::to_string(max_range_ >> 20) +
        " MiB); use a smaller context (--ctx-size)");
  k_cache_.clear();
  v_cache_.clear();
  k_cache_.resize(size_t(n_layer) * n_seq);
  v_cache_.resize(size_t(n_layer) * n_seq);
}

void DeviceBackend::store_kv(int layer, const Tensor& k, const Tensor& v,
                             const std::vector<int32_t>& positions,
                             const std::vector<int32_t>& seqs) {
  for (size_t t = 0; t < positions.size(); ++t) {
    if (positions[t] < 0 || positions[t] >= n_ctx_)
      throw std::runtime_error("position " + std::to_string(positions[t]) +
                               " is outside the context of " + std::to_string(n_ctx_) + " tokens");
    if (seqs[t] < 0 || seqs[t] >= n_seq_)
      throw std::runtime_error("sequence " + std::to_string(seqs[t]) + " is outside the cache's " +
                               std::to_string(n_seq_));
  }
  const Staged pos = stage(positions.data(), positions.size() * sizeof(int32_t));
  const uint32_t f16 = cache_type_ == CacheType::kF16 ? 1 : 0;
  const size_t bytes = size_t(n_ctx_) * kv_bytes(cache_type_, kv_dim_);
  for (auto [first, end] : sequence_runs(seqs)) {
    const size_t cache = size_t(layer) * n_seq_ + seqs[first];
    if (!k_cache_[cache]) {
      k_cache_[cache] = device_->buffer(bytes);
      v_cache_[cache] = device_->buffer(bytes);
    }
    for (auto [src, dst] : {std::pair{&k, &k_cache_[cache]}, std::pair{&v, &v_cache_[cache]}}) {
      StoreKvPush p{u32(end - first),
                    u32(kv_dim_),
                    u32(src->offset + first * src->cols),
                    u32(src->cols),
                    u32(pos.offset + first),
                    f16};
      dispatch("store_kv", {&buffer(*src), dst->get(), pos.buffer}, p,
               groups_for(uint64_t(end - first) * kv_dim_));
    }
  }
}

void DeviceBackend::attention(int layer, const Tensor& q, const std::vector<int32_t>& positions,
                              const std::vector<int32_t>& seqs, int n_head, int n_head_kv,
                              int head_dim, float scale, float softcap, int window, Tensor out) {
  const int most =
      static_cast<int>(std::min<uint32_t>(512, 8 * device_->limits().attention_workgroup));
  if (head_dim > most || head_dim % 2 != 0)
    throw std::runtime_error("the device attention kernel handles even head sizes up to " +
                             std::to_string(most) + ", not " + std::to_string(head_dim));
  const Staged pos = stage(positions.data(), positions.size() * sizeof(int32_t));
  for (auto [run_first, run_end] : sequence_runs(seqs))
    for (size_t first = run_first; first < run_end; first += kMaxGroups) {
      const size_t end = std::min<size_t>(run_end, first + kMaxGroups);
      const size_t cache = size_t(layer) * n_seq_ + seqs[first];
      if (!k_cache_[cache])
        throw std::logic_error("attention over a layer whose cache was never stored into");
      AttentionPush p{u32(n_head / n_head_kv),
                      u32(head_dim),
                      u32(kv_dim_),
                      u32(q.offset + first * q.cols),
                      u32(q.cols),
                      u32(out.offset + first * out.cols),
                      u32(out.cols),
                      u32(pos.offset + first),
                      u32(std::max(window, 0)),
                      cache_type_ == CacheType::kF16 ? 1u : 0u,
                      scale,
                      softcap};
      dispatch("attention",
               {&buffer(q), &buffer(out), k_cache_[cache].get(), v_cache_[cache].get(), pos.buffer},
               p, u32(n_head), u32(end - first));
    }
}

void DeviceBackend::moe_ffn(const LayerWeights& w, const HyperParams& hp, const Tensor& x,
                            const Tensor& router_logits, Tensor out) {
  const int k = hp.n_expert_used;
  if (k > kMaxExpertsUsed)
    throw std::runtime_error("the device backend routes at most " +
                             std::to_string(kMaxExpertsUsed) + " experts per token, not " +
                             std::to_string(k));
  const int64_t n = x.rows, pairs = n * k;
  // ids hold int32 bits in a float tensor (the shaders bind the same buffer as int[]).
  Tensor ids = alloc(n, k), weights = alloc(n, k);
  MoeRoutePush route{u32(n),
                     u32(hp.n_expert),
                     u32(k),
                     hp.expert_weights_norm ? 1u : 0u,
                     u32(router_logits.offset),
                     u32(ids.offset),
                     u32(weights.offset)};
  dispatch("moe_route", {&buffer(router_logits), &buffer(ids), &buffer(weights)}, route,
           groups_for(uint64_t(n)));
  Tensor gate = alloc(pairs, hp.n_ff_expert), up = alloc(pairs, hp.n_ff_expert),
         down = alloc(pairs, x.cols);
  matmul_experts(w.ffn_gate_exps, x, k, ids, gate);
  matmul_experts(w.ffn_up_exps, x, k, ids, up);
  glu(gate, up, hp.activation, gate);
  matmul_experts(w.ffn_down_exps, gate, 1, ids, down);
  MoeCombinePush combine{u32(n),           u32(x.cols),         u32(k),
                         u32(down.offset), u32(weights.offset), u32(out.offset)};
  dispatch("moe_combine", {&buffer(down), &buffer(weights), &buffer(out)}, combine,
           groups_for(uint64_t(n) * x.cols));
}

void DeviceBackend::scale_rows_sigmoid(Tensor x, const Tensor& gate) {
  ScaleRowsPush p{u32(x.rows), u32(x.cols), u32(x.offset), u32(gate.offset)};
  dispatch("scale_rows", {&buffer(x), &buffer(gate)}, p, groups_for(uint64_t(x.rows) * x.cols));
}

void DeviceBackend::copy_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor out) {
  const Staged idx = stage(rows.data(), rows.size() * sizeof(int32_t));
  CopyRowsPush p{u32(rows.size()), u32(x.cols), u32(x.offset), u32(out.offset), idx.offset};
  dispatch("copy_rows", {&buffer(x), &buffer(out), idx.buffer}, p,
           groups_for(uint64_t(rows.size()) * x.cols));
}

void DeviceBackend::write_rows(Tensor t, const float* host) {
  // Through the upload buffer and a recorded copy, so it lands after the dispatches before it.
  const size_t bytes = static_cast<size_t>(t.rows * t.cols) * sizeof(float);
  const Staged staged = stage(host, bytes);
  device_->copy(*staged.buffer, buffer(t), bytes, size_t(staged.offset) * 4, t.offset * 4);
}

void DeviceBackend::read_rows(const Tensor& t, int64_t first, int64_t count, float* host) {
  device_->finish();
  device_->read(buffer(t), host, static_cast<size_t>(count * t.cols) * sizeof(float),
                static_cast<size_t>(t.offset + first * t.cols) * sizeof(float));
}

}  // namespace ember::model
