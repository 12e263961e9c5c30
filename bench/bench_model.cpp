// `ember bench make-model --type Q4_0|Q8_0|Q4_K_M [--shape 1b|7b] --out FILE`: a random-weight
// model with TinyLlama-1.1B's shapes (llama, n_embd 2048, 22 layers, 32 heads, 4 KV heads,
// n_ff 5632, vocab 32000, separate output matrix) or Llama-2-7B's (n_embd 4096, 32 layers, 32
// heads and KV heads, n_ff 11008), written with ember's writer and quantised with ember's
// quantiser: the workloads of ../shared/PERFORMANCE.md. Speed depends on shapes and types only.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

#include "bench/bench.h"
#include "gguf/writer.h"
#include "kernels/cpu/reference.h"
#include "kernels/cpu/thread_pool.h"

namespace ember::bench {
namespace {

using gguf::TensorType;

struct Shape {
  int n_embd = 2048, n_layer = 22, n_head = 32, n_head_kv = 4, n_ff = 5632, n_vocab = 32000;
};

// Quantises `rows` × `cols` random N(0, scale²) values into `type`, rows split over the pool.
std::vector<uint8_t> random_tensor(TensorType type, int64_t rows, int64_t cols, float scale,
                                   uint64_t seed, cpu::ThreadPool& pool) {
  const size_t row_bytes = gguf::bytes_for(type, cols);
  std::vector<uint8_t> out(row_bytes * rows);
  pool.run([&](int t) {
    auto [begin, end] = cpu::ThreadPool::share(rows, t, pool.size());
    std::mt19937_64 rng(seed * 1000003 + t);
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> row(cols);
    for (int64_t r = begin; r < end; ++r) {
      for (float& v : row) v = normal(rng);
      cpu::reference::quantize_row(type, row.data(), out.data() + r * row_bytes, cols);
    }
  });
  return out;
}

std::vector<uint8_t> ones(int64_t n) {
  std::vector<float> v(n, 1.0f);
  std::vector<uint8_t> out(n * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

}  // namespace

int run_make_model(const MakeModelOptions& options) {
  const std::string& mix = options.type;
  const std::string* out = &options.out;
  if (out->empty()) throw std::invalid_argument("--out FILE is required");
  // The per-tensor types of each mix, as llama.cpp's quantize chooses them: the output matrix
  // in Q6_K (except Q8_0); Q4_K_M puts attn_v and ffn_down of some layers in Q6_K.
  TensorType base, output;
  bool k_m = false;
  if (mix == "Q4_0")
    base = TensorType::Q4_0, output = TensorType::Q6_K;
  else if (mix == "Q8_0")
    base = output = TensorType::Q8_0;
  else if (mix == "Q4_K_M")
    base = TensorType::Q4_K, output = TensorType::Q6_K, k_m = true;
  else
    throw std::invalid_argument("--type must be Q4_0, Q8_0 or Q4_K_M");

  Shape s;
  if (options.shape == "7b")
    s = {4096, 32, 32, 32, 11008, 32000};
  else if (options.shape != "1b")
    throw std::invalid_argument("--shape must be 1b or 7b, not '" + options.shape + "'");
  const int head_dim = s.n_embd / s.n_head, kv_dim = s.n_head_kv * head_dim;
  cpu::ThreadPool pool(options.threads);
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_string(
      "general.name",
      std::string(options.shape == "7b" ? "ember-bench-llama7b-" : "ember-bench-tinyllama-") + mix);
  w.set_u32("llama.context_length", 2048);
  w.set_u32("llama.embedding_length", s.n_embd);
  w.set_u32("llama.block_count", s.n_layer);
  w.set_u32("llama.feed_forward_length", s.n_ff);
  w.set_u32("llama.attention.head_count", s.n_head);
  w.set_u32("llama.attention.head_count_kv", s.n_head_kv);
  w.set_u32("llama.rope.dimension_count", head_dim);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int i = 0; i < s.n_vocab; ++i) {
    tokens.push_back(i < 3 ? std::vector<std::string>{"<unk>", "<s>", "</s>"}[i]
                           : "t" + std::to_string(i));
    scores.push_back(-static_cast<float>(i));
    types.push_back(i < 3 ? (i == 0 ? 2 : 3) : 1);
  }
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_f32s("tokenizer.ggml.scores", scores);
  w.set_i32s("tokenizer.ggml.token_type", types);

  uint64_t seed = 1;
  auto add = [&](const std::string& name, TensorType type, int64_t cols, int64_t rows) {
    if (isatty(2)) std::fprintf(stderr, "\rmake-model: %-28s", name.c_str());
    w.add_tensor(name, type, {uint64_t(cols), uint64_t(rows)},
                 random_tensor(type, rows, cols, 0.02f, seed++, pool));
  };
  add("token_embd.weight", base, s.n_embd, s.n_vocab);
  w.add_tensor("output_norm.weight", TensorType::F32, {uint64_t(s.n_embd)}, ones(s.n_embd));
  add("output.weight", output, s.n_embd, s.n_vocab);
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const bool more_bits =
        k_m && (l < s.n_layer / 8 || l >= 7 * s.n_layer / 8 || (l - s.n_layer / 8) % 3 == 2);
    const TensorType bumped = more_bits ? TensorType::Q6_K : base;
    w.add_tensor(p + "attn_norm.weight", TensorType::F32, {uint64_t(s.n_embd)}, ones(s.n_embd));
    w.add_tensor(p + "ffn_norm.weight", TensorType::F32, {uint64_t(s.n_embd)}, ones(s.n_embd));
    add(p + "attn_q.weight", base, s.n_embd, s.n_embd);
    add(p + "attn_k.weight", base, s.n_embd, kv_dim);
    add(p + "attn_v.weight", bumped, s.n_embd, kv_dim);
    add(p + "attn_output.weight", base, s.n_embd, s.n_embd);
    add(p + "ffn_gate.weight", base, s.n_embd, s.n_ff);
    add(p + "ffn_up.weight", base, s.n_embd, s.n_ff);
    add(p + "ffn_down.weight", bumped, s.n_ff, s.n_embd);
  }
  w.write_file(*out);
  std::fprintf(stderr, "\rmake-model: wrote %s\n", out->c_str());
  return 0;
}

}  // namespace ember::bench
