// The attention block kernel: every level against the plain reference on awkward sizes (head
// dims, groups, windows, F16, F32 and Q8_0 caches, positions across chunk edges), and a query's
// result independent of the block it comes in (bit for bit), which batched decoding relies on.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/fp16.h"
#include "kernels/cpu/kernels.h"
#include "tests/kernels/kernel_test_util.h"

using namespace ember;

namespace {

using gguf::TensorType;
constexpr TensorType F16 = TensorType::F16, F32 = TensorType::F32, Q8_0 = TensorType::Q8_0;

struct Case {
  int head_dim, group, n_tokens, first_pos, window;
  TensorType kv;
  float softcap = 0;
};

struct Data {
  std::vector<float> q, out;
  std::vector<uint16_t> k16, v16;
  std::vector<float> k32, v32;
  std::vector<uint8_t> k8, v8;  // Q8_0 rows (row_stride is a multiple of 32)
  std::vector<int32_t> positions;
  int64_t row_stride;
};

Data make(const Case& c, uint32_t seed) {
  Data d;
  const int ctx = c.first_pos + c.n_tokens;
  // Another KV head and padding sit between rows (whole Q8_0 blocks of it).
  d.row_stride = c.head_dim * 2 + 32;
  d.k32 = test::random_floats(ctx * d.row_stride, seed);
  d.v32 = test::random_floats(ctx * d.row_stride, seed + 1);
  for (float& x : d.k32) x *= 2;
  d.k16.resize(d.k32.size());
  d.v16.resize(d.v32.size());
  for (size_t i = 0; i < d.k32.size(); ++i) {
    d.k16[i] = cpu::f32_to_fp16(d.k32[i]);
    d.v16[i] = cpu::f32_to_fp16(d.v32[i]);
  }
  const cpu::TypeKernels& q8 = *cpu::find_kernels(Q8_0);  // its act quantiser writes Q8_0
  d.k8.resize(d.k32.size() / 32 * 34);
  d.v8.resize(d.v32.size() / 32 * 34);
  q8.quantize_act(d.k32.data(), d.k8.data(), int64_t(d.k32.size()));
  q8.quantize_act(d.v32.data(), d.v8.data(), int64_t(d.v32.size()));
  d.q = test::random_floats(int64_t(c.n_tokens) * c.group * c.head_dim, seed + 2);
  for (int b = 0; b < c.n_tokens; ++b) d.positions.push_back(c.first_pos + b);
  d.out.assign(d.q.size(), NAN);
  return d;
}

cpu::AttentionBlock block_of(const Case& c, Data& d, int first, int count) {
  cpu::AttentionBlock a;
  const int64_t stride = int64_t(c.group) * c.head_dim;
  a.q = d.q.data() + first * stride;
  a.q_stride = stride;
  a.positions = d.positions.data() + first;
  a.n_tokens = count;
  a.group = c.group;
  a.head_dim = c.head_dim;
  auto pick = [&](const std::vector<uint16_t>& f16, const std::vector<float>& f32,
                  const std::vector<uint8_t>& q8) -> const void* {
    return c.kv == F16   ? static_cast<const void*>(f16.data())
           : c.kv == F32 ? static_cast<const void*>(f32.data())
                         : q8.data();
  };
  a.k = pick(d.k16, d.k32, d.k8);
  a.v = pick(d.v16, d.v32, d.v8);
  a.row_stride = d.row_stride;
  a.kv_type = c.kv;
  a.window = c.window;
  a.scale = 1.0f / std::sqrt(float(c.head_dim));
  a.softcap = c.softcap;
  a.out = d.out.data() + first * stride;
  a.out_stride = stride;
  return a;
}

const Case kCases[] = {
    {64, 1, 1, 0, 0, F16},        {64, 3, 7, 60, 0, F16},       {64, 8, 32, 100, 0, F32},
    {256, 1, 5, 130, 0, F16},     {256, 4, 3, 0, 0, F32},       {48, 2, 9, 63, 0, F16},
    {64, 2, 17, 200, 50, F16},    {128, 1, 32, 0, 0, F16},      {16, 5, 4, 64, 0, F32},
    {64, 2, 9, 70, 8, F16, 0.5f}, {48, 1, 5, 10, 0, F32, 0.3f},  // soft-capped (gemma2)
    {64, 3, 7, 60, 0, Q8_0},      {256, 1, 5, 130, 0, Q8_0},    {32, 2, 9, 63, 0, Q8_0},
    {128, 4, 17, 200, 50, Q8_0},  {64, 1, 1, 0, 0, Q8_0},       {80, 2, 5, 70, 0, F16},
    {96, 3, 9, 40, 0, F32},       {96, 2, 3, 100, 0, Q8_0},
};

}  // namespace

TEST(Attention, EveryLevelMatchesTheReference) {
  for (const Case& c : kCases) {
    SCOPED_TRACE("head_dim " + std::to_string(c.head_dim) + " group " + std::to_string(c.group) +
                 " tokens " + std::to_string(c.n_tokens) + " first " + std::to_string(c.first_pos));
    Data want = make(c, 7);
    cpu::AttentionScratch scratch;
    cpu::attention_reference(block_of(c, want, 0, c.n_tokens), scratch);
    for (cpu::Isa isa : cpu::available_isas()) {
      Data got = make(c, 7);
      cpu::attention_kernel(isa)(block_of(c, got, 0, c.n_tokens), scratch);
      double num = 0, den = 0;
      for (size_t i = 0; i < got.out.size(); ++i) {
        num += double(got.out[i] - want.out[i]) * (got.out[i] - want.out[i]);
        den += double(want.out[i]) * want.out[i];
      }
      EXPECT_LE(std::sqrt(num / den), 2e-6) << cpu::isa_name(isa);
    }
  }
}

TEST(Attention, ResultsDoNotDependOnTheBlock) {
  for (const Case& c : kCases) {
    Data whole = make(c, 3), single = make(c, 3);
    cpu::AttentionScratch scratch;
    const cpu::AttentionFn kernel = cpu::attention_kernel();
    kernel(block_of(c, whole, 0, c.n_tokens), scratch);
    for (int b = 0; b < c.n_tokens; ++b) kernel(block_of(c, single, b, 1), scratch);
    ASSERT_EQ(whole.out.size(), single.out.size());
    // Bits, not values: == would take −0 for +0.
    EXPECT_EQ(std::memcmp(whole.out.data(), single.out.data(), whole.out.size() * sizeof(float)), 0)
        << "head_dim " << c.head_dim << " tokens " << c.n_tokens;
  }
}

// The soft-cap against attention written out in double: softmax over cap·tanh(q·k·scale / cap)
// of the visible keys, for the last token of a windowed, capped case.
TEST(Attention, SoftcapIsAppliedToTheScaledScores) {
  const Case c{64, 2, 9, 70, 8, F32, 0.5f};
  Data d = make(c, 11);
  cpu::AttentionScratch scratch;
  cpu::attention_reference(block_of(c, d, 0, c.n_tokens), scratch);
  const int b = c.n_tokens - 1, pos = d.positions[b];
  for (int h = 0; h < c.group; ++h) {
    const float* q = d.q.data() + (int64_t(b) * c.group + h) * c.head_dim;
    std::vector<double> w;
    double total = 0;
    for (int key = pos - c.window + 1; key <= pos; ++key) {
      double s = 0;
      for (int i = 0; i < c.head_dim; ++i) s += double(q[i]) * d.k32[key * d.row_stride + i];
      s = c.softcap * std::tanh(s / std::sqrt(double(c.head_dim)) / c.softcap);
      w.push_back(std::exp(s));
      total += w.back();
    }
    for (int i = 0; i < c.head_dim; ++i) {
      double want = 0;
      for (int j = 0; j < c.window; ++j)
        want += w[j] / total * d.v32[(pos - c.window + 1 + j) * d.row_stride + i];
      EXPECT_NEAR(d.out[(int64_t(b) * c.group + h) * c.head_dim + i], want, 1e-5);
    }
  }
}

// A Q8_0 cache is the F32 one rounded to 8 bits per value: the attention it gives stays within
// that rounding of the F32 result (about 1% relative RMS on uniform random rows, 8-bit
// rounding's worst case), and is not the same (the rows
// really are read as Q8_0).
TEST(Attention, Q8_0CacheStaysCloseToF32) {
  for (const Case& q8 : kCases) {
    if (q8.kv != Q8_0) continue;
    Case f32 = q8;
    f32.kv = F32;
    Data a = make(q8, 5), b = make(f32, 5);
    cpu::AttentionScratch scratch;
    cpu::attention_kernel()(block_of(q8, a, 0, q8.n_tokens), scratch);
    cpu::attention_kernel()(block_of(f32, b, 0, f32.n_tokens), scratch);
    double num = 0, den = 0;
    for (size_t i = 0; i < a.out.size(); ++i) {
      num += double(a.out[i] - b.out[i]) * (a.out[i] - b.out[i]);
      den += double(b.out[i]) * b.out[i];
    }
    EXPECT_LE(std::sqrt(num / den), 2e-2) << "head_dim " << q8.head_dim;
    EXPECT_GT(num, 0) << "head_dim " << q8.head_dim;
  }
}
