#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/fp16.h"

namespace ember::cpu {

#if defined(__x86_64__)
void attention_avx512(const AttentionBlock& block,
                      AttentionScratch& scratch);  // attention_avx512.cpp
#endif

AttentionScratch::~AttentionScratch() {
  std::free(keys);
}

float* AttentionScratch::reserve(int64_t floats) {
  if (floats > capacity) {
    std::free(keys);
    keys =
        static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>((floats + 15) / 16 * 64)));
    if (!keys) throw std::bad_alloc();
    capacity = floats;
  }
  return keys;
}

namespace {

float cached(const void* base, gguf::TensorType type, int64_t index) {
  switch (type) {
    case gguf::TensorType::F16:
      return fp16_to_f32(static_cast<const uint16_t*>(base)[index]);
    case gguf::TensorType::Q8_0: {
      const BlockQ8_0& b = static_cast<const BlockQ8_0*>(base)[index / kQK];
      return fp16_to_f32(b.d) * float(b.qs[index % kQK]);
    }
    default:
      return static_cast<const float*>(base)[index];
  }
}

}  // namespace

// For each query: over its visible keys in chunks of kAttentionChunk absolute positions, scores
// q·k·scale, a running maximum m, sum l and output o (o and l rescaled when m grows), then o / l.
void attention_reference(const AttentionBlock& a, AttentionScratch& scratch) {
  const int d = a.head_dim;
  float* o = scratch.reserve(d + kAttentionChunk);
  float* p = o + d;
  for (int b = 0; b < a.n_tokens; ++b) {
    const int pos = a.positions[b];
    const int lo = a.window > 0 ? std::max(0, pos - a.window + 1) : 0;
    for (int h = 0; h < a.group; ++h) {
      const float* q = a.q + b * a.q_stride + int64_t(h) * d;
      float m = -std::numeric_limits<float>::infinity(), l = 0;
      std::fill(o, o + d, 0.0f);
      for (int c0 = lo / kAttentionChunk * kAttentionChunk; c0 <= pos; c0 += kAttentionChunk) {
        float chunk_max = -std::numeric_limits<float>::infinity();
        for (int j = 0; j < kAttentionChunk; ++j) {
          const int key = c0 + j;
          if (key < lo || key > pos) {
            p[j] = -std::numeric_limits<float>::infinity();
            continue;
          }
          float s = 0;
          for (int i = 0; i < d; ++i) s += q[i] * cached(a.k, a.kv_type, key * a.row_stride + i);
          p[j] = s * a.scale;
          if (a.softcap > 0) p[j] = a.softcap * std::tanh(p[j] / a.softcap);
          chunk_max = std::max(chunk_max, p[j]);
        }
        const float m_new = std::max(m, chunk_max);
        const float rescale = std::exp(m - m_new);
        l *= rescale;
        for (int i = 0; i < d; ++i) o[i] *= rescale;
        for (int j = 0; j < kAttentionChunk; ++j) {
          const int key = c0 + j;
          if (key < lo || key > pos) continue;
          const float w = std::exp(p[j] - m_new);
          l += w;
          for (int i = 0; i < d; ++i) o[i] += w * cached(a.v, a.kv_type, key * a.row_stride + i);
        }
        m = m_new;
      }
      float* out = a.out + b * a.out_stride + int64_t(h) * d;
      for (int i = 0; i < d; ++i) out[i] = o[i] / l;
    }
  }
}

AttentionFn attention_kernel(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512Vnni) return attention_avx512;
#endif
  (void)isa;
  return attention_reference;
}

}  // namespace ember::cpu
