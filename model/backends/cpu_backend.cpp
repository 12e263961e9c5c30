#include "model/backends/cpu_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>

#include "kernels/cpu/fp16.h"
#include "kernels/cpu/kernels.h"

namespace ember::model {
namespace {

const cpu::TypeKernels& kernels_for(const Weight& w) {
  const cpu::TypeKernels* k = cpu::find_kernels(w.type());
  if (!k)
    throw std::runtime_error("tensor '" + std::string(w.info->name) + "' has type " +
                             std::string(gguf::type_name(w.type())) +
                             ", which ember cannot compute with yet");
  return *k;
}

}  // namespace

CpuBackend::CpuBackend(int n_threads) : CpuBackend(std::make_shared<cpu::ThreadPool>(n_threads)) {}

CpuBackend::CpuBackend(std::shared_ptr<cpu::ThreadPool> pool)
    : pool_(std::move(pool)),
      vector_ops_(cpu::vector_ops()),
      q8_0_(*cpu::find_kernels(gguf::TensorType::Q8_0)),
      attention_kernel_(cpu::attention_kernel()) {}

Tensor CpuBackend::alloc(int64_t rows, int64_t cols) {
  constexpr size_t kChunkFloats = size_t(4) << 20;  // 16 MiB
  const ScratchArena::Place p = scratch_.place(static_cast<size_t>(rows * cols), [&](size_t n) {
    chunks_.emplace_back(new float[std::max(n, kChunkFloats)]);
    return std::max(n, kChunkFloats);
  });
  Tensor t;
  t.data = chunks_[p.chunk].get() + p.offset;
  t.rows = rows;
  t.cols = cols;
  return t;
}

void CpuBackend::reset_scratch() {
  scratch_rewind(0);
}

size_t CpuBackend::scratch_mark() const {
  return scratch_.mark();
}

void CpuBackend::scratch_rewind(size_t mark) {
  scratch_.rewind(mark);
}

void CpuBackend::embed(const Weight& table, const std::vector<int32_t>& ids, float scale,
                       Tensor out) {
  const cpu::TypeKernels& k = kernels_for(table);
  const int64_t row_bytes = static_cast<int64_t>(gguf::bytes_for(table.type(), table.cols()));
  // A table that is also the output matrix (tied) may have been interleaved, its mapped pages
  // handed back: its rows then come from the copy, a group unpacked at a time.
  auto copy = interleaved_.find(std::make_tuple(table.data(), table.rows(), table.cols()));
  const int64_t grouped = table.rows() / cpu::kInterleaveRows * cpu::kInterleaveRows;
  std::vector<uint8_t> group_rows;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= table.rows())
      throw std::runtime_error("token id " + std::to_string(ids[i]) + " is outside the vocabulary");
    const uint8_t* src = table.data() + ids[i] * row_bytes;
    if (copy != interleaved_.end()) {
      src = copy->second.get() + ids[i] * row_bytes;  // rows past the groups are as they were
      if (ids[i] < grouped) {
        group_rows.resize(static_cast<size_t>(cpu::kInterleaveRows * row_bytes));
        const int64_t first = ids[i] / cpu::kInterleaveRows * cpu::kInterleaveRows;
        k.interleaved->unpack(copy->second.get() + first * row_bytes, table.cols(),
                              group_rows.data(), static_cast<size_t>(row_bytes));
        src = group_rows.data() + (ids[i] - first) * row_bytes;
      }
    }
    float* row = out.data + i * out.cols;
    k.dequantize(src, row, table.cols());
    if (scale != 1.0f)
      for (int64_t j = 0; j < out.cols; ++j) row[j] *= scale;
  }
}

cpu::MatmulPart CpuBackend::operand(const Weight& w, float* y) {
  const cpu::TypeKernels& k = kernels_for(w);
  const uint8_t* data = w.data();
  if (!interleave_ || !k.interleaved || w.rows() < cpu::kInterleaveRows)
    return {&k, data, w.rows(), y};
  const auto key = std::make_tuple(data, w.rows(), w.cols());
  auto it = interleaved_.find(key);
  if (it == interleaved_.end()) {
    const size_t bytes = static_cast<size_t>(w.rows()) * gguf::bytes_for(w.type(), w.cols());
    std::unique_ptr<uint8_t, FreeDeleter> copy(
        static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
    if (!copy) throw std::bad_alloc();
    cpu::interleave(k, data, w.rows(), w.cols(), copy.get(), *pool_);
    it = interleaved_.emplace(key, std::move(copy)).first;
#ifdef MADV_PAGEOUT
    // The whole pages of the original go back to the kernel (file pages are dropped, anonymous
    // ones swapped); a tied embedding table's rows come from the copy from now on (embed).
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t first = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
    const uintptr_t last = (reinterpret_cast<uintptr_t>(data) + bytes) / page * page;
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
#endif
  }
  return {&k, it->second.get(), w.rows(), y, true};
}

void CpuBackend::matmul(const Weight& w, const Tensor& x, Tensor out, int expert) {
  if (expert < 0) {
    const cpu::MatmulPart p = operand(w, out.data);
    cpu::matmul(*p.k, p.weights, p.rows, w.cols(), x.data, x.rows, out.data, *pool_,
                matmul_scratch_, p.interleaved);
    return;
  }
  const cpu::TypeKernels& k = kernels_for(w);
  const uint8_t* data = w.data() + static_cast<int64_t>(expert) * w.rows() *
                                       static_cast<int64_t>(gguf::bytes_for(w.type(), w.cols()));
  cpu::matmul(k, data, w.rows(), w.cols(), x.data, x.rows, out.data, *pool_, matmul_scratch_);
}

void CpuBackend::matmul_shared(std::span<const Weight* const> w, const Tensor& x,
                               std::span<const Tensor> out) {
  std::vector<cpu::MatmulPart> parts;
  for (size_t i = 0; i < w.size(); ++i) parts.push_back(operand(*w[i], out[i].data));
  cpu::matmul_shared(parts, x.cols, x.data, x.rows, *pool_, matmul_scratch_);
}

void CpuBackend::add_bias(Tensor x, const Weight& bias) {
  const float* b = bias.floats();
  for (int64_t r = 0; r < x.rows; ++r)
    for (int64_t c = 0; c < x.cols; ++c) x.data[r * x.cols + c] += b[c];
}

void CpuBackend::rms_norm(const Tensor& x, const Weight& weight, float eps, Tensor out) {
  const float* w = weight.floats();
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* in = x.data + r * x.cols;
    float* o = out.data + r * x.cols;
    // Σx² in double, in 8 interleaved partial sums (a fixed order the compiler can vectorise;
    // one running sum was a chain of dependent adds, 2 µs for 4 rows of 576).
    double part[8] = {};
    int64_t c = 0;
    for (; c + 8 <= x.cols; c += 8)
      for (int j = 0; j < 8; ++j) part[j] += double(in[c + j]) * in[c + j];
    for (; c < x.cols; ++c) part[0] += double(in[c]) * in[c];
    const double sum =
        ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    const float inv = 1.0f / std::sqrt(static_cast<float>(sum / x.cols) + eps);
    for (c = 0; c < x.cols; ++c) o[c] = in[c] * inv * w[c];
  }
}

const CpuBackend::RopeAngles& CpuBackend::rope_angles(const RopeTable& table,
                                                      const std::vector<int32_t>& positions) {
  auto same_table = [&](const RopeAngles& a) {
    return a.table.inv_freq == table.inv_freq && a.table.mscale == table.mscale;
  };
  for (RopeAngles& a : rope_angles_)
    if (same_table(a) && a.positions == positions) return a;
  // The table's own slot, else an empty one, else the second.
  RopeAngles* slot = &rope_angles_[1];
  for (RopeAngles& a : rope_angles_)
    if (same_table(a) || a.table.inv_freq.empty()) {
      slot = &a;
      break;
    }
  const int half = table.n_rot() / 2;
  slot->table = table;
  slot->positions = positions;
  slot->cos.resize(positions.size() * half);
  slot->sin.resize(positions.size() * half);
  for (size_t t = 0; t < positions.size(); ++t)
    for (int i = 0; i < half; ++i) {
      const double theta = positions[t] * table.inv_freq[i];
      slot->cos[t * half + i] = static_cast<float>(std::cos(theta)) * table.mscale;
      slot->sin[t * half + i] = static_cast<float>(std::sin(theta)) * table.mscale;
    }
  return *slot;
}

void CpuBackend::rope(Tensor x, const std::vector<int32_t>& positions, int n_heads,
                      const RopeTable& table, RopeStyle style) {
  const int64_t head_dim = x.cols / n_heads;
  const int half = table.n_rot() / 2;
  const RopeAngles& angles = rope_angles(table, positions);
  for (size_t t = 0; t < positions.size(); ++t) {
    const float* cos_t = angles.cos.data() + t * half;
    const float* sin_t = angles.sin.data() + t * half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = x.data + t * x.cols + h * head_dim;
      for (int i = 0; i < half; ++i) {
        int a = style == RopeStyle::kNeox ? i : 2 * i;
        int b = style == RopeStyle::kNeox ? i + half : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = x0 * cos_t[i] - x1 * sin_t[i];
        v[b] = x0 * sin_t[i] + x1 * cos_t[i];
      }
    }
  }
}

void CpuBackend::add(Tensor x, const Tensor& y) {
  for (int64_t i = 0; i < x.rows * x.cols; ++i) x.data[i] += y.data[i];
}

void CpuBackend::add_scaled_rows(Tensor x, const Tensor& y, const std::vector<float>& scales) {
  for (int64_t r = 0; r < x.rows; ++r) {
    if (scales[r] == 0) continue;
    float* xr = x.data + r * x.cols;
    const float* yr = y.data + r * x.cols;
    for (int64_t c = 0; c < x.cols; ++c) xr[c] += scales[r] * yr[c];
  }
}

void CpuBackend::glu(const Tensor& gate, const Tensor& up, Activation act, Tensor out) {
  const auto fn = act == Activation::kSilu ? vector_ops_.silu_mul : vector_ops_.gelu_mul;
  const int64_t n = gate.rows * gate.cols;
  if (n < (int64_t(1) << 16)) return fn(gate.data, up.data, out.data, n);  // not worth a wake-up
  pool_->run([&](int t) {  // shares of whole 8-float vectors
    auto [begin, end] = cpu::ThreadPool::share((n + 7) / 8, t, pool_->size());
    begin *= 8;
    end = std::min(n, end * 8);
    if (begin < end) fn(gate.data + begin, up.data + begin, out.data + begin, end - begin);
  });
}

void CpuBackend::init_cache(int n_layer, int n_ctx, int n_head_kv, int head_dim, CacheType type,
                            int n_seq) {
  check_cache_type(type, head_dim);  // each head's rows whole blocks
  cache_type_ = type;
  n_ctx_ = n_ctx;
  n_head_kv_ = n_head_kv;
  head_dim_ = head_dim;
  n_seq_ = n_seq;
  const size_t bytes = size_t(n_seq) * n_head_kv * n_ctx * kv_bytes(type, head_dim);
  k_cache_.clear();
  v_cache_.clear();
  for (int l = 0; l < n_layer; ++l) {
    k_cache_.push_back(std::make_unique_for_overwrite<uint8_t[]>(bytes));
    v_cache_.push_back(std::make_unique_for_overwrite<uint8_t[]>(bytes));
  }
}

uint8_t* CpuBackend::cache_row(const std::unique_ptr<uint8_t[]>& layer_cache, int seq, int head,
                               int pos) const {
  return layer_cache.get() +
         ((size_t(seq) * n_head_kv_ + head) * n_ctx_ + pos) * kv_bytes(cache_type_, head_dim_);
}

void CpuBackend::store_kv(int layer, const Tensor& k, const Tensor& v,
                          const std::vector<int32_t>& positions, const std::vector<int32_t>& seqs) {
  for (size_t t = 0; t < positions.size(); ++t) {
    const int pos = positions[t], seq = seqs[t];
    if (pos < 0 || pos >= n_ctx_)
      throw std::runtime_error("position " + std::to_string(pos) + " is outside the context of " +
                               std::to_string(n_ctx_) + " tokens");
    if (seq < 0 || seq >= n_seq_)
      throw std::runtime_error("sequence " + std::to_string(seq) + " is outside the cache's " +
                               std::to_string(n_seq_));
    for (auto [src, cache] : {std::pair{&k, &k_cache_[layer]}, std::pair{&v, &v_cache_[layer]}})
      for (int head = 0; head < n_head_kv_; ++head) {
        const float* row = src->data + t * src->cols + int64_t(head) * head_dim_;
        uint8_t* dst = cache_row(*cache, seq, head, pos);
        switch (cache_type_) {
          case CacheType::kF32:
            std::memcpy(dst, row, head_dim_ * sizeof(float));
            break;
          case CacheType::kF16:
            vector_ops_.f32_to_fp16(row, reinterpret_cast<uint16_t*>(dst), head_dim_);
            break;
          case CacheType::kQ8_0:  // GGUF's Q8_0 rounding: the activation quantiser's
            q8_0_.quantize_act(row, dst, head_dim_);
            break;
        }
      }
  }
}

void CpuBackend::attention(int layer, const Tensor& q, const std::vector<int32_t>& positions,
                           const std::vector<int32_t>& seqs, int n_head, int n_head_kv,
                           int head_dim, float scale, float softcap, int window, Tensor out) {
  const int64_t n_tokens = static_cast<int64_t>(positions.size());
  if (n_tokens == 0) return;
  if (n_head_kv != n_head_kv_ || head_dim != head_dim_)
    throw std::logic_error("attention over " + std::to_string(n_head_kv) + " KV heads of " +
                           std::to_string(head_dim) + " values, but the cache holds " +
                           std::to_string(n_head_kv_) + " of " + std::to_string(head_dim_));
  const int group = n_head / n_head_kv;  // query heads sharing one kv head
  // Blocks: runs of consecutive batch entries of one sequence, at most kAttentionBlock long
  // (a prompt chunk is one run; a generation step has one token per sequence).
  std::vector<std::pair<int64_t, int64_t>> blocks;  // [first, end)
  for (int64_t t = 0; t < n_tokens;) {
    int64_t e = t + 1;
    while (e < n_tokens && e - t < cpu::kAttentionBlock && seqs[e] == seqs[t]) ++e;
    blocks.emplace_back(t, e);
    t = e;
  }
  attention_scratch_.resize(static_cast<size_t>(pool_->size()));
  // One job per (block, kv head), dealt out in turn: later blocks see more positions, and
  // contiguous shares would give the last thread most of the work. With fewer of those than
  // threads (a generated token of a model with one or two kv heads: Gemma 3 270M has one), each
  // is split further by query heads, which share the kv head's rows but not their arithmetic, so
  // a head's result does not depend on the split.
  const int64_t units = static_cast<int64_t>(blocks.size()) * n_head_kv;
  const int split =
      units >= pool_->size()
          ? 1
          : static_cast<int>(std::min<int64_t>(group, (pool_->size() + units - 1) / units));
  const int64_t jobs = units * split;
  const gguf::TensorType kv_type = cache_type_ == CacheType::kF16   ? gguf::TensorType::F16
                                   : cache_type_ == CacheType::kF32 ? gguf::TensorType::F32
                                                                    : gguf::TensorType::Q8_0;
  auto block_of = [&](int64_t job) {
    const int64_t unit = job / split;
    const int part = static_cast<int>(job % split);
    const auto [first, end] = blocks[unit / n_head_kv];
    const int g = static_cast<int>(unit % n_head_kv);
    const int h0 = group * part / split, h1 = group * (part + 1) / split;  // query heads
    const int64_t head_offset = (int64_t(g) * group + h0) * head_dim;
    cpu::AttentionBlock block;
    block.q = q.data + first * q.cols + head_offset;
    block.q_stride = q.cols;
    block.positions = positions.data() + first;
    block.n_tokens = static_cast<int>(end - first);
    block.group = h1 - h0;
    block.head_dim = head_dim;
    block.k = cache_row(k_cache_[layer], seqs[first], g, 0);
    block.v = cache_row(v_cache_[layer], seqs[first], g, 0);
    block.row_stride = head_dim;
    block.kv_type = kv_type;
    block.window = window;
    block.scale = scale;
    block.softcap = softcap;
    block.out = out.data + first * out.cols + head_offset;
    block.out_stride = out.cols;
    return block;
  };
  pool_->run([&](int thread) {
    const int step = pool_->size();
    cpu::AttentionBlock block{}, next{};
    if (thread < jobs) block = block_of(thread);
    for (int64_t job = thread; job < jobs; job += step) {
      const bool more = job + step < jobs;
      if (more) next = block_of(job + step);
      block.next = more ? &next : nullptr;  // its rows are fetched while this one runs
      attention_kernel_(block, attention_scratch_[thread]);
      block = next;
    }
  });
}

void CpuBackend::moe_ffn(const LayerWeights& w, const HyperParams& hp, const Tensor& x,
                         const Tensor& router_logits, Tensor out) {
  const int n_expert = hp.n_expert, k = hp.n_expert_used;
  // Routing: softmax over all experts, keep the top k, optionally renormalise them.
  std::vector<std::vector<std::pair<int64_t, float>>> routed(n_expert);  // expert → (row, weight)
  std::vector<float> probs(n_expert);
  std::vector<int> order(n_expert);
  for (int64_t t = 0; t < x.rows; ++t) {
    const float* logits = router_logits.data + t * n_expert;
    float max_logit = *std::max_element(logits, logits + n_expert);
    double sum = 0;
    for (int e = 0; e < n_expert; ++e) sum += (probs[e] = std::exp(logits[e] - max_logit));
    for (int e = 0; e < n_expert; ++e) probs[e] = static_cast<float>(probs[e] / sum);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });
    float kept = 0;
    for (int i = 0; i < k; ++i) kept += probs[order[i]];
    for (int i = 0; i < k; ++i) {
      float weight = hp.expert_weights_norm ? probs[order[i]] / kept : probs[order[i]];
      routed[order[i]].emplace_back(t, weight);
    }
  }
  std::fill(out.data, out.data + out.rows * out.cols, 0.0f);
  const int64_t n_ff = hp.n_ff_expert, n_embd = x.cols;
  // Each expert's weights are read once for all the rows routed to it.
  for (int e = 0; e < n_expert; ++e) {
    const auto& rows = routed[e];
    if (rows.empty()) continue;
    const int64_t m = static_cast<int64_t>(rows.size());
    Tensor xe = alloc(m, n_embd), gate = alloc(m, n_ff), up = alloc(m, n_ff),
           down = alloc(m, n_embd);
    for (int64_t i = 0; i < m; ++i)
      std::memcpy(xe.data + i * n_embd, x.data + rows[i].first * n_embd, n_embd * sizeof(float));
    matmul(w.ffn_gate_exps, xe, gate, e);
    matmul(w.ffn_up_exps, xe, up, e);
    glu(gate, up, hp.activation, gate);
    matmul(w.ffn_down_exps, gate, down, e);
    for (int64_t i = 0; i < m; ++i) {
      float* o = out.data + rows[i].first * n_embd;
      const float* d = down.data + i * n_embd;
      for (int64_t c = 0; c < n_embd; ++c) o[c] += rows[i].second * d[c];
    }
  }
}

void CpuBackend::scale_rows_sigmoid(Tensor x, const Tensor& gate) {
  for (int64_t r = 0; r < x.rows; ++r) {
    const float s = 1.0f / (1.0f + std::exp(-gate.data[r]));
    for (int64_t c = 0; c < x.cols; ++c) x.data[r * x.cols + c] *= s;
  }
}

void CpuBackend::copy_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor out) {
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(out.data + i * out.cols, x.data + rows[i] * x.cols, x.cols * sizeof(float));
}

void CpuBackend::read_rows(const Tensor& t, int64_t first, int64_t count, float* host) {
  std::memcpy(host, t.data + first * t.cols, static_cast<size_t>(count * t.cols) * sizeof(float));
}

void CpuBackend::write_rows(Tensor t, const float* host) {
  std::memcpy(t.data, host, static_cast<size_t>(t.rows * t.cols) * sizeof(float));
}

}  // namespace ember::model
