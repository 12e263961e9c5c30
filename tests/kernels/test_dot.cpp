// Every dot-product kernel at every instruction-set level this CPU has, against the reference
// (both rows dequantised, summed in double), on random data of awkward sizes; and the threaded
// matrix products against single dot products.
#include <gtest/gtest.h>

#include <cstring>

#include <algorithm>
#include <tuple>

#include <cmath>
#include <limits>

#include "kernels/cpu/block_formats.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/reference.h"
#include "tests/kernels/kernel_test_util.h"

using gguf::TensorType;
using namespace ember;

namespace {

std::vector<cpu::Isa> available_levels() {
  return cpu::available_isas();
}

// Sizes in elements: 1, 3 and 7 blocks and a long odd count; float types also get lengths that
// are not multiples of the SIMD width.
std::vector<int64_t> sizes_for(TensorType type) {
  int64_t block = std::max<int64_t>(gguf::traits(type).block_size,
                                    gguf::traits(cpu::activation_type(type)).block_size);
  std::vector<int64_t> sizes = {block, 3 * block, 7 * block, 23 * block};
  if (block == 1) sizes.insert(sizes.end(), {5, 8, 15, 17, 31, 100, 1003, 4099});
  return sizes;
}

}  // namespace

TEST(VecDot, EveryLevelMatchesTheReference) {
  for (cpu::Isa isa : available_levels()) {
    for (TensorType type : test::compute_types()) {
      const cpu::TypeKernels* k = cpu::find_kernels(type, isa);
      ASSERT_NE(k, nullptr) << gguf::type_name(type);
      for (int64_t n : sizes_for(type)) {
        SCOPED_TRACE(std::string(cpu::isa_name(isa)) + " " + std::string(gguf::type_name(type)) +
                     " n=" + std::to_string(n));
        std::vector<uint8_t> w = test::random_row(type, n, 11 + n);
        std::vector<float> x = test::random_floats(n, 99 + n);
        std::vector<uint8_t> a(gguf::bytes_for(k->act_type, n));
        k->quantize_act(x.data(), a.data(), n);
        double expected = cpu::reference::dot(type, w.data(), k->act_type, a.data(), n);
        // Scale of the terms: Σ|w·a| bounds the float rounding of any summation order.
        std::vector<float> wf(n), af(n);
        cpu::reference::dequantize_row(type, w.data(), wf.data(), n);
        cpu::reference::dequantize_row(k->act_type, a.data(), af.data(), n);
        double magnitude = 0;
        for (int64_t i = 0; i < n; ++i) magnitude += std::fabs(double(wf[i]) * af[i]);
        float got = k->vec_dot(n, w.data(), a.data());
        EXPECT_NEAR(got, expected, 2e-6 * magnitude + 1e-6);

        // Tiles of 4 rows × 1..4 tokens: each (row, token) checked against the reference.
        const size_t row_bytes = gguf::bytes_for(type, n), act_bytes = a.size();
        std::vector<uint8_t> rows4, acts4;
        for (int r = 0; r < cpu::kTileRows; ++r) {
          std::vector<uint8_t> row = r == 0 ? w : test::random_row(type, n, 1000 * r + n);
          rows4.insert(rows4.end(), row.begin(), row.end());
        }
        for (int t = 0; t < cpu::kTileTokens; ++t) {
          std::vector<float> xt = test::random_floats(n, 500 * t + n);
          std::vector<uint8_t> at(act_bytes);
          k->quantize_act(xt.data(), at.data(), n);
          acts4.insert(acts4.end(), at.begin(), at.end());
        }
        for (int tokens = 1; tokens <= cpu::kTileTokens; ++tokens) {
          const size_t stride = 7;  // outputs of one token are `stride` floats apart
          std::vector<float> out(stride * tokens, NAN);
          k->dot_tile(n, rows4.data(), row_bytes, acts4.data(), act_bytes, tokens, out.data(),
                      stride);
          for (int t = 0; t < tokens; ++t)
            for (int r = 0; r < cpu::kTileRows; ++r) {
              double ref = cpu::reference::dot(type, rows4.data() + r * row_bytes, k->act_type,
                                               acts4.data() + t * act_bytes, n);
              EXPECT_NEAR(out[t * stride + r], ref, 8e-6 * magnitude + 1e-5)
                  << "tile of " << tokens << " tokens, row " << r << " token " << t;
            }
        }
      }
    }
  }
}

TEST(VecDot, SimdLevelsCoverTheMainTypes) {
  if (cpu::best_isa() == cpu::Isa::Scalar) GTEST_SKIP() << "no SIMD level on this CPU";
  std::vector<TensorType> covered = test::compute_types();  // x86: every type
  if (cpu::best_isa() == cpu::Isa::Neon)                    // ARM: all quantised types
    covered = {TensorType::Q4_0, TensorType::Q4_1,   TensorType::Q5_0, TensorType::Q5_1,
               TensorType::Q8_0, TensorType::IQ4_NL, TensorType::Q2_K, TensorType::Q3_K,
               TensorType::Q4_K, TensorType::Q5_K,   TensorType::Q6_K};
  for (TensorType type : covered)
    EXPECT_NE(cpu::find_kernels(type)->isa, cpu::Isa::Scalar) << gguf::type_name(type);
}

// Tiles, packed products (from kPackedMinTokens tokens, where a format has them) and threads all
// give exactly the single dot products: a token's result never depends on its batch.
TEST(Matmul, ThreadedProductsEqualSingleDots) {
  const int64_t rows = 37;
  for (auto [type, cols, tokens] :
       std::vector<std::tuple<TensorType, int64_t, int64_t>>{{TensorType::Q4_0, 512, 5},
                                                             {TensorType::Q4_K, 512, 5},
                                                             {TensorType::F16, 512, 5},
                                                             {TensorType::Q6_K, 512, 5},
                                                             {TensorType::Q4_0, 640, 70},
                                                             {TensorType::Q4_1, 640, 70},
                                                             {TensorType::Q5_0, 640, 9},
                                                             {TensorType::Q5_1, 128, 13},
                                                             {TensorType::Q8_0, 640, 70},
                                                             {TensorType::IQ4_NL, 192, 11},
                                                             {TensorType::Q8_0, 96, 12},
                                                             {TensorType::Q4_K, 512, 21},
                                                             {TensorType::Q4_K, 256, 300},
                                                             {TensorType::Q5_K, 768, 40},
                                                             {TensorType::Q6_K, 512, 17},
                                                             {TensorType::Q3_K, 512, 33},
                                                             {TensorType::Q2_K, 256, 9},
                                                             {TensorType::IQ4_XS, 512, 19}}) {
    SCOPED_TRACE(std::string(gguf::type_name(type)) + " cols " + std::to_string(cols) + " tokens " +
                 std::to_string(tokens));
    const cpu::TypeKernels* k = cpu::find_kernels(type);
    std::vector<uint8_t> w = test::random_row(type, rows * cols, 5);
    std::vector<float> x = test::random_floats(tokens * cols, 6);
    std::vector<float> expected(tokens * rows);
    std::vector<uint8_t> a(gguf::bytes_for(k->act_type, cols));
    const int64_t row_bytes = gguf::bytes_for(type, cols);
    for (int64_t t = 0; t < tokens; ++t) {
      k->quantize_act(x.data() + t * cols, a.data(), cols);
      for (int64_t r = 0; r < rows; ++r)
        expected[t * rows + r] = k->vec_dot(cols, w.data() + r * row_bytes, a.data());
    }
    for (int threads : {1, 2, 3}) {
      cpu::ThreadPool pool(threads);
      cpu::MatmulScratch scratch;
      std::vector<float> y(tokens * rows, NAN);
      cpu::matmul(*k, w.data(), rows, cols, x.data(), tokens, y.data(), pool, scratch);
      EXPECT_EQ(y, expected) << threads << " threads";
      std::vector<float> y1(rows, NAN);
      cpu::matvec(*k, w.data(), rows, cols, x.data(), y1.data(), pool, scratch);
      EXPECT_EQ(y1, std::vector<float>(expected.begin(), expected.begin() + rows));
    }
  }
}

// Products that share their input, run as one (q, k and v; gate and up), give each part's own
// product bit for bit: parts of different types and awkward row counts, whether they share an
// activation format (one pass) or not (one after another), below and above the packed path.
TEST(Matmul, SharedInputProductsEqualSeparateOnes) {
  const int64_t cols = 512;
  for (auto types :
       std::vector<std::vector<TensorType>>{{TensorType::Q4_K, TensorType::Q4_K, TensorType::Q6_K},
                                            {TensorType::Q4_1, TensorType::Q8_0},
                                            {TensorType::Q4_0, TensorType::Q4_K},
                                            {TensorType::F16, TensorType::F32}}) {
    const std::vector<int64_t> rows = {37, 5, 64};
    std::vector<std::vector<uint8_t>> w;
    for (size_t p = 0; p < types.size(); ++p)
      w.push_back(test::random_row(types[p], rows[p] * cols, 11 + int(p)));
    for (int64_t tokens : {1, 3, 5, 9}) {
      SCOPED_TRACE(std::string(gguf::type_name(types[0])) + "+... tokens " +
                   std::to_string(tokens));
      const std::vector<float> x = test::random_floats(tokens * cols, 7);
      for (int threads : {1, 2, 3}) {
        cpu::ThreadPool pool(threads);
        cpu::MatmulScratch scratch;
        std::vector<std::vector<float>> separate, shared;
        std::vector<cpu::MatmulPart> parts;
        for (size_t p = 0; p < types.size(); ++p) {
          const cpu::TypeKernels* k = cpu::find_kernels(types[p]);
          separate.emplace_back(tokens * rows[p], NAN);
          shared.emplace_back(tokens * rows[p], NAN);
          cpu::matmul(*k, w[p].data(), rows[p], cols, x.data(), tokens, separate[p].data(), pool,
                      scratch);
          parts.push_back({k, w[p].data(), rows[p], shared[p].data()});
        }
        cpu::matmul_shared(parts, cols, x.data(), tokens, pool, scratch);
        for (size_t p = 0; p < types.size(); ++p)
          EXPECT_EQ(shared[p], separate[p]) << "part " << p << ", " << threads << " threads";
      }
    }
  }
}

// Interleaved weights (kernels.h): the layout round-trips, and products over it — the group
// tiles in generation, panels unpacked from groups in prompt processing, single dots for the rows
// after the last group, alone and beside other parts — equal those over the plain rows bit for
// bit, on row counts around the group size and token counts on both paths.
TEST(Matmul, InterleavedWeightsGiveTheSameProductsBitForBit) {
  int types = 0;
  for (TensorType type : test::compute_types()) {
    const cpu::TypeKernels* k = cpu::find_kernels(type);
    if (!k->interleaved) continue;
    ++types;
    const int64_t block = gguf::traits(type).block_size;  // 32, or a K-family super-block
    // Groups are 16 rows; rows past them stay plain (40 and 61 leave a whole panel of 8 for the
    // packed path). A tile call covers up to 8 groups and sums the activations 512 blocks at a
    // time: 149 rows (9 groups) and, for the 32-element family, 515 blocks cross both.
    std::vector<int64_t> col_counts = {block, 3 * block, std::max<int64_t>(512, 4 * block)};
    if (block == cpu::kQK) col_counts.push_back(515 * block);
    for (int64_t cols : col_counts) {
      for (int64_t rows : {16, 21, 40, 61, 149}) {
        const bool wide = cols > 4096;  // only what it adds: many groups, few tokens
        if (wide && rows < 61) continue;
        SCOPED_TRACE(std::string(gguf::type_name(type)) + " " + std::to_string(rows) + " x " +
                     std::to_string(cols));
        std::vector<uint8_t> w = test::random_row(type, rows * cols, 5);
        if (type == TensorType::Q8_0)  // the extreme value −128 (random rows never hold it)
          for (size_t b = 0; b < w.size(); b += sizeof(cpu::BlockQ8_0))
            w[b + 2 + b / sizeof(cpu::BlockQ8_0) % cpu::kQK] = 0x80;
        std::vector<uint8_t> inter(w.size()), back(w.size());
        cpu::ThreadPool pool(2);
        cpu::interleave(*k, w.data(), rows, cols, inter.data(), pool);
        EXPECT_NE(inter, w);
        const size_t row_bytes = gguf::bytes_for(type, cols);
        for (int64_t g = 0; g < rows / cpu::kInterleaveRows; ++g)
          k->interleaved->unpack(inter.data() + g * cpu::kInterleaveRows * row_bytes, cols,
                                 back.data() + g * cpu::kInterleaveRows * row_bytes, row_bytes);
        const size_t done = rows / cpu::kInterleaveRows * cpu::kInterleaveRows * row_bytes;
        std::memcpy(back.data() + done, inter.data() + done, w.size() - done);
        EXPECT_EQ(back, w);
        const std::vector<uint8_t> other = test::random_row(TensorType::Q8_0, 5 * cols, 6);
        const cpu::TypeKernels* q8 = cpu::find_kernels(TensorType::Q8_0);
        for (int64_t tokens : {1, 2, 3, 4, 5, 7, 9, 17, 257}) {
          if (wide && tokens > 5) continue;
          SCOPED_TRACE("tokens " + std::to_string(tokens));
          const std::vector<float> x = test::random_floats(tokens * cols, 3);
          for (int threads : {1, 2, 3}) {
            cpu::ThreadPool p(threads);
            cpu::MatmulScratch scratch;
            std::vector<float> plain(tokens * rows, NAN), ours(tokens * rows, NAN);
            cpu::matmul(*k, w.data(), rows, cols, x.data(), tokens, plain.data(), p, scratch);
            cpu::matmul(*k, inter.data(), rows, cols, x.data(), tokens, ours.data(), p, scratch,
                        true);
            EXPECT_EQ(ours, plain) << threads << " threads";
            std::vector<float> beside(tokens * 5, NAN);
            std::fill(ours.begin(), ours.end(), NAN);
            const cpu::MatmulPart parts[] = {{q8, other.data(), 5, beside.data()},
                                             {k, inter.data(), rows, ours.data(), true}};
            cpu::matmul_shared(parts, cols, x.data(), tokens, p, scratch);
            EXPECT_EQ(ours, plain) << threads << " threads, shared";
          }
        }
      }
    }
  }
  if (types == 0) GTEST_SKIP() << "no interleaved kernels at this instruction-set level";
  if (cpu::best_isa() == cpu::Isa::Avx512Vnni) {
    EXPECT_GE(types, 7);  // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K
  }
}

TEST(ThreadPool, RunsEveryIndexOnceManyTimes) {
  cpu::ThreadPool pool(3);
  std::vector<int> counts(3, 0);
  for (int round = 0; round < 2000; ++round) pool.run([&](int t) { counts[t]++; });
  EXPECT_EQ(counts, (std::vector<int>{2000, 2000, 2000}));
}

// The 512-bit K-family tiles sum the same integers as the 256-bit ones: results are identical,
// so a process's results do not depend on which x86 level runs them.
TEST(VecDot, KFamilyZmmTilesEqualTheYmmOnes) {
  const auto isas = cpu::available_isas();
  if (std::find(isas.begin(), isas.end(), cpu::Isa::Avx512Vnni) == isas.end())
    GTEST_SKIP() << "no AVX-512 VNNI here";
  for (TensorType type : {TensorType::Q4_K, TensorType::Q5_K}) {
    const cpu::TypeKernels* zmm = cpu::find_kernels(type, cpu::Isa::Avx512Vnni);
    const cpu::TypeKernels* ymm = cpu::find_kernels(type, cpu::Isa::Avx2);
    const int64_t cols = 768, rows = 4;
    std::vector<uint8_t> w = test::random_row(type, rows * cols, 8);
    std::vector<float> x = test::random_floats(4 * cols, 9);
    std::vector<uint8_t> a(4 * gguf::bytes_for(zmm->act_type, cols));
    const size_t act_bytes = gguf::bytes_for(zmm->act_type, cols);
    for (int t = 0; t < 4; ++t)
      zmm->quantize_act(x.data() + t * cols, a.data() + t * act_bytes, cols);
    EXPECT_EQ(zmm->vec_dot(cols, w.data(), a.data()), ymm->vec_dot(cols, w.data(), a.data()));
    std::vector<float> out_z(16), out_y(16);
    const size_t row_bytes = gguf::bytes_for(type, cols);
    zmm->dot_tile(cols, w.data(), row_bytes, a.data(), act_bytes, 4, out_z.data(), 4);
    ymm->dot_tile(cols, w.data(), row_bytes, a.data(), act_bytes, 4, out_y.data(), 4);
    EXPECT_EQ(out_z, out_y) << gguf::type_name(type);
  }
}

// The gated FFN's activations at every level against the formulas in double, over the range
// activations take (and far beyond, where e^x saturates), on lengths that leave SIMD tails.
TEST(VectorOps, GatedActivationsMatchTheFormulas) {
  std::vector<float> gate, up;
  for (int i = 0; i < 1003; ++i) {
    gate.push_back(-40.0f + 80.0f * float(i) / 1002.0f);
    up.push_back(i % 7 == 0 ? -1.5f : 0.75f);
  }
  gate.insert(gate.end(), {0.0f, -0.0f, 1e-8f, -1e-8f, 1000.0f, -1000.0f, 3e38f, -3e38f});
  up.resize(gate.size(), 1.0f);
  for (cpu::Isa isa : available_levels()) {
    const cpu::VectorOps& ops = cpu::vector_ops(isa);
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(9), static_cast<int64_t>(gate.size())}) {
      std::vector<float> silu(n), gelu(n);
      ops.silu_mul(gate.data(), up.data(), silu.data(), n);
      ops.gelu_mul(gate.data(), up.data(), gelu.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double x = gate[i];
        const double want_silu = x / (1.0 + std::exp(-x)) * up[i];
        const double want_gelu =
            0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) * up[i];
        const double tol = 2e-6 * std::max(1.0, std::abs(x * up[i]) * (x > 0));
        EXPECT_NEAR(silu[i], want_silu, tol) << cpu::isa_name(isa) << " silu(" << x << ")";
        EXPECT_NEAR(gelu[i], want_gelu, tol) << cpu::isa_name(isa) << " gelu(" << x << ")";
      }
    }
  }
  // In place, as the forward pass calls it (out = gate).
  std::vector<float> g = gate, want(gate.size());
  cpu::vector_ops().gelu_mul(gate.data(), up.data(), want.data(), int64_t(gate.size()));
  cpu::vector_ops().gelu_mul(g.data(), up.data(), g.data(), int64_t(g.size()));
  EXPECT_EQ(g, want);
}

// Greedy sampling's argmax at every level: the first of equal largest values (few distinct
// values, so ties are everywhere), the answer at every position of the SIMD blocks and their
// tails, and NaNs and −∞ skipped or taken as the rule says.
TEST(VectorOps, ArgmaxIsTheFirstLargestValue) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  auto plain = [](const std::vector<float>& x) {  // the rule, written out
    int64_t best = -1;
    for (int64_t i = 0; i < int64_t(x.size()); ++i)
      if (!std::isnan(x[i]) && (best < 0 || x[i] > x[best])) best = i;
    return best < 0 ? int64_t(0) : best;
  };
  std::vector<std::vector<float>> cases = {{}, {nan}, {nan, nan, -inf}, {-inf, -inf}, {nan, 1.0f}};
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 262147}) {
    std::vector<float> x(n);
    for (float& v : x) v = float(next() >> 28) - 8.0f;  // 16 values
    cases.push_back(x);
    for (int64_t at : {int64_t(0), n / 2, n - 1}) {  // one largest at the start, middle, end
      std::vector<float> y = x;
      y[at] = 100.0f;
      cases.push_back(y);
      y[at] = nan;  // a NaN where the largest was
      if (at + 1 < n) y[at + 1] = inf;
      cases.push_back(y);
    }
  }
  for (cpu::Isa isa : available_levels())
    for (const std::vector<float>& x : cases)
      EXPECT_EQ(cpu::vector_ops(isa).argmax(x.data(), int64_t(x.size())), plain(x))
          << cpu::isa_name(isa) << " n=" << x.size();
  // The large case on its own: what max_element gives where there is no NaN.
  std::vector<float> x(262147);
  for (float& v : x) v = float(next() >> 28) - 8.0f;
  EXPECT_EQ(cpu::vector_ops().argmax(x.data(), int64_t(x.size())),
            std::max_element(x.begin(), x.end()) - x.begin());
}
