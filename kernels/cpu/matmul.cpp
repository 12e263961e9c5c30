#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <span>
#include <stdexcept>

#include "kernels/cpu/decoded_rows.h"

namespace ember::cpu {
namespace {

// Quantises the activations of all tokens into the kernel's act_type, split over threads.
const uint8_t* quantize_activations(const TypeKernels& k, int64_t cols, const float* x,
                                    int64_t tokens, ThreadPool& pool, MatmulScratch& scratch,
                                    int64_t* act_row_bytes) {
  *act_row_bytes = static_cast<int64_t>(gguf::bytes_for(k.act_type, cols));
  if (k.act_type == gguf::TensorType::F32) return reinterpret_cast<const uint8_t*>(x);
  scratch.activations.resize(static_cast<size_t>(*act_row_bytes * tokens));
  uint8_t* out = scratch.activations.data();
  int64_t row_bytes = *act_row_bytes;
  if (tokens == 1) {
    k.quantize_act(x, out, cols);
  } else {
    pool.run([&](int t) {
      auto [begin, end] = ThreadPool::share(tokens, t, pool.size());
      for (int64_t i = begin; i < end; ++i) k.quantize_act(x + i * cols, out + i * row_bytes, cols);
    });
  }
  return out;
}

}  // namespace

void matvec(const TypeKernels& k, const void* weights, int64_t rows, int64_t cols, const float* x,
            float* y, ThreadPool& pool, MatmulScratch& scratch) {
  matmul(k, weights, rows, cols, x, 1, y, pool, scratch);
}

namespace {

// Prompt processing with packed operands (TypeKernels::gemm): activations are packed once, a
// group of tokens at a time; then each work item (token block, panel) packs its weight panel and
// runs it against the block (blocks of token_block tokens, so their packed groups stay in cache).
// Rows beyond a multiple of the panel use vec_dot.
void packed_matmul(const TypeKernels& k, const uint8_t* w, int64_t row_bytes, int64_t rows,
                   int64_t cols, const uint8_t* act, int64_t act_bytes, int64_t tokens, float* y,
                   ThreadPool& pool, MatmulScratch& scratch, bool interleaved) {
  const PackedGemm& g = *k.gemm;
  const int64_t group = g.token_group, groups = (tokens + group - 1) / group;
  const size_t group_bytes = g.act_bytes(cols);
  scratch.packed.resize(group_bytes * static_cast<size_t>(groups));
  uint8_t* packed = scratch.packed.data();
  scratch.panels.resize(static_cast<size_t>(pool.size()));
  for (auto& p : scratch.panels) p.resize(g.panel_bytes(cols));
  if (interleaved && kInterleaveRows % g.panel_rows != 0)  // a group's rows are whole panels
    throw std::logic_error("interleaved weights need groups of whole panels");
  const int64_t grouped = rows / kInterleaveRows * kInterleaveRows;  // rows in groups
  pool.run([&](int t) {
    auto [begin, end] = ThreadPool::share(groups, t, pool.size());
    for (int64_t i = begin; i < end; ++i)
      g.pack_act(act + i * group * act_bytes, static_cast<size_t>(act_bytes),
                 static_cast<int>(std::min(group, tokens - i * group)), cols,
                 packed + i * group_bytes);
  });
  // Work items are (token block, panel), block by block, handed out one at a time: the cores of
  // a shared machine do not run at the same speed, and a fixed split waits for the slowest.
  const int64_t panel_rows = g.panel_rows, panels = rows / panel_rows;
  const int64_t blocks = (tokens + g.token_block - 1) / g.token_block;
  std::atomic<int64_t> next_item{0};
  pool.run([&](int thread) {
    uint8_t* panel = scratch.panels[thread].data();
    for (int64_t item;
         (item = next_item.fetch_add(1, std::memory_order_relaxed)) < blocks * panels;) {
      const int64_t t0 = item / panels * g.token_block, r = item % panels * panel_rows;
      const int64_t n = std::min(g.token_block, tokens - t0);
      if (interleaved && r < grouped) {  // the panel's rows of its group
        const int64_t first = r / kInterleaveRows * kInterleaveRows;
        DecodedRow rows_of_block[kInterleaveRows];
        for (int64_t i = 0; i < cols / g.block_elems; ++i) {
          k.interleaved->decode(w + first * row_bytes, i, static_cast<int>(r - first), g.panel_rows,
                                rows_of_block);
          g.pack_block(rows_of_block, i, panel);
        }
      } else {
        g.pack_panel(w + r * row_bytes, static_cast<size_t>(row_bytes), cols, panel);
      }
      g.panel_gemm(panel, cols, packed + (t0 / group) * group_bytes, n, y + t0 * rows + r,
                   static_cast<size_t>(rows));
    }
    auto [lo, hi] = ThreadPool::share(rows - panels * panel_rows, thread, pool.size());
    for (int64_t r = panels * panel_rows + lo; r < panels * panel_rows + hi; ++r)
      for (int64_t i = 0; i < tokens; ++i)
        y[i * rows + r] = k.vec_dot(cols, w + r * row_bytes, act + i * act_bytes);
  });
}

// Rows [begin, end) of one product on the calling thread: tiles of kTileRows rows × up to
// kTileTokens tokens, then single dot products for the rows left over.
void tile_rows(const TypeKernels& k, const uint8_t* w, int64_t row_bytes, int64_t rows,
               int64_t cols, int64_t begin, int64_t end, const uint8_t* act, int64_t act_bytes,
               int64_t tokens, float* y, bool interleaved) {
  int64_t r = begin;
  if (interleaved) {  // whole groups (begin is a group's first row)
    const int64_t grouped = std::min(end, rows / kInterleaveRows * kInterleaveRows);
    while (r < grouped) {
      const int64_t groups =
          std::min<int64_t>(kInterleaveTileGroups, (grouped - r) / kInterleaveRows);
      for (int64_t i = 0; i < tokens; i += kTileTokens)
        k.interleaved->tile(cols, groups, w + r * row_bytes, act + i * act_bytes, act_bytes,
                            static_cast<int>(std::min<int64_t>(kTileTokens, tokens - i)),
                            y + i * rows + r, static_cast<size_t>(rows));
      r += groups * kInterleaveRows;
    }
  }
  for (; r + kTileRows <= end; r += kTileRows) {
    const uint8_t* row = w + r * row_bytes;
    for (int64_t i = 0; i < tokens; i += kTileTokens) {
      const int n_tokens = static_cast<int>(std::min<int64_t>(kTileTokens, tokens - i));
      k.dot_tile(cols, row, row_bytes, act + i * act_bytes, act_bytes, n_tokens, y + i * rows + r,
                 rows);
    }
  }
  for (; r < end; ++r)
    for (int64_t i = 0; i < tokens; ++i)
      y[i * rows + r] = k.vec_dot(cols, w + r * row_bytes, act + i * act_bytes);
}

}  // namespace

void matmul(const TypeKernels& k, const void* weights, int64_t rows, int64_t cols, const float* x,
            int64_t tokens, float* y, ThreadPool& pool, MatmulScratch& scratch, bool interleaved) {
  const MatmulPart part{&k, weights, rows, y, interleaved};
  matmul_shared({&part, 1}, cols, x, tokens, pool, scratch);
}

void matmul_shared(std::span<const MatmulPart> parts, int64_t cols, const float* x, int64_t tokens,
                   ThreadPool& pool, MatmulScratch& scratch) {
  if (parts.empty()) return;
  const TypeKernels& first = *parts[0].k;
  auto packed = [&](const MatmulPart& p) {  // whether the part takes packed_matmul
    const int64_t least = p.interleaved ? kPackedMinTokensInterleaved : kPackedMinTokens;
    return tokens >= least && p.k->gemm && cols % p.k->gemm->block_elems == 0;
  };
  bool shared = true;  // one activation format for all, and no part takes the packed path
  for (const MatmulPart& p : parts) shared &= p.k->act_type == first.act_type && !packed(p);
  if (!shared && parts.size() > 1) {
    for (const MatmulPart& p : parts) matmul_shared({&p, 1}, cols, x, tokens, pool, scratch);
    return;
  }
  int64_t act_bytes = 0;
  const uint8_t* act = quantize_activations(first, cols, x, tokens, pool, scratch, &act_bytes);
  auto row_bytes = [&](const MatmulPart& p) {
    return static_cast<int64_t>(gguf::bytes_for(p.k->weight_type, cols));
  };
  if (parts.size() == 1 && packed(parts[0])) {
    const MatmulPart& p = parts[0];
    return packed_matmul(first, static_cast<const uint8_t*>(p.weights), row_bytes(p), p.rows, cols,
                         act, act_bytes, tokens, p.y, pool, scratch, p.interleaved);
  }
  // All parts' rows as one sequence, split over the threads by weight bytes (the parts' types
  // may differ: Q4_K q and k beside a Q6_K v). A boundary inside a part falls on a whole tile, the
  // same for the two threads that meet there.
  int64_t total = 0;
  for (const MatmulPart& p : parts) total += p.rows * row_bytes(p);
  pool.run([&](int t) {
    const int64_t lo = total * t / pool.size(), hi = total * (t + 1) / pool.size();
    int64_t start = 0;  // bytes before this part
    for (const MatmulPart& p : parts) {
      const int64_t rb = row_bytes(p), bytes = p.rows * rb;
      const int64_t unit = p.interleaved ? kInterleaveRows : kTileRows;
      auto boundary = [&](int64_t b) {
        if (b <= start) return int64_t(0);
        if (b >= start + bytes) return p.rows;
        return std::min(p.rows, (b - start) / rb / unit * unit);
      };
      const int64_t begin = boundary(lo), end = boundary(hi);
      if (begin < end)
        tile_rows(*p.k, static_cast<const uint8_t*>(p.weights), rb, p.rows, cols, begin, end, act,
                  act_bytes, tokens, p.y, p.interleaved);
      start += bytes;
    }
  });
}

void interleave(const TypeKernels& k, const void* weights, int64_t rows, int64_t cols, void* out,
                ThreadPool& pool) {
  const int64_t row_bytes = static_cast<int64_t>(gguf::bytes_for(k.weight_type, cols));
  const int64_t groups = rows / kInterleaveRows;
  const auto* in = static_cast<const uint8_t*>(weights);
  auto* o = static_cast<uint8_t*>(out);
  pool.run([&](int t) {
    auto [begin, end] = ThreadPool::share(groups, t, pool.size());
    for (int64_t g = begin; g < end; ++g) {
      const int64_t at = g * kInterleaveRows * row_bytes;
      k.interleaved->repack(in + at, static_cast<size_t>(row_bytes), cols, o + at);
    }
  });
  const int64_t done = groups * kInterleaveRows * row_bytes;  // the rows left over, as they are
  std::memcpy(o + done, in + done, static_cast<size_t>(rows * row_bytes - done));
}

}  // namespace ember::cpu
