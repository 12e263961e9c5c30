#include "tests/gguf/sample_files.h"

#include <string>

namespace ember::test {

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> out(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return out;
}

gguf::Writer sample_writer() {
  using gguf::TensorType;
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "sample");
  w.set_u8("test.u8", 200);
  w.set_i8("test.i8", -100);
  w.set_u16("test.u16", 60000);
  w.set_i16("test.i16", -30000);
  w.set_u32("llama.block_count", 2);
  w.set_i32("test.i32", -2000000000);
  w.set_u64("test.u64", 18000000000000000000ull);
  w.set_i64("test.i64", -9000000000000000000ll);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_f64("test.f64", 0.1);
  w.set_bool("test.bool", true);
  w.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "hello", "", "\xe4\xb8\x96"});
  const float scores[] = {0.0f, -1.5f, 2.25f};
  w.set_f32s("tokenizer.ggml.scores", scores);
  const int32_t types[] = {2, 3, 3, 1};
  w.set_i32s("tokenizer.ggml.token_type", types);
  // An array of arrays of u16, encoded by hand: [[1, 2], []].
  std::vector<uint8_t> nested = {9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,  // ARRAY of 2 elements
                                 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0,  // [u16 1, 2]
                                 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};             // []
  w.set_raw("test.nested", gguf::ValueType::ARRAY, nested);

  w.add_tensor("token_embd.weight", TensorType::Q4_0, {64, 6}, pattern(6 * 2 * 18, 1));
  w.add_tensor("output_norm.weight", TensorType::F32, {64}, pattern(64 * 4, 2));
  w.add_tensor("blk.0.ffn_up_exps.weight", TensorType::Q8_0, {32, 3, 2}, pattern(6 * 34, 3));
  w.add_tensor("blk.0.attn_q.weight", TensorType::Q4_K, {256, 5}, pattern(5 * 144, 4));
  w.add_tensor("odd.bf16", TensorType::BF16, {7, 1, 1, 3}, pattern(21 * 2, 5));
  return w;
}

}  // namespace ember::test
