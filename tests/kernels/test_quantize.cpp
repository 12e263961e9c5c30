// Quantise-then-dequantise error per type on Gaussian data, against bounds the formats allow
// (a uniform quantiser with step Δ has RMS error Δ/√12), and basic properties of each format.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/reference.h"
#include "tests/kernels/kernel_test_util.h"

using gguf::TensorType;
using namespace ember;

namespace {

double relative_rms_error(TensorType type, const std::vector<float>& x) {
  std::vector<uint8_t> q(gguf::bytes_for(type, x.size()));
  cpu::reference::quantize_row(type, x.data(), q.data(), static_cast<int64_t>(x.size()));
  std::vector<float> y(x.size());
  cpu::reference::dequantize_row(type, q.data(), y.data(), static_cast<int64_t>(x.size()));
  double err = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) err += (x[i] - y[i]) * (x[i] - y[i]), norm += x[i] * x[i];
  return std::sqrt(err / norm);
}

}  // namespace

TEST(Quantize, ErrorWithinTheFormatsBounds) {
  // Upper bounds on relative RMS error for N(0,1) data. 8-bit ≈ (block max/127)/√12, the block
  // max being ~2.4σ over 32 values and ~3σ over 256;
  // 4-bit ≈ 0.07-0.09; 3-bit ≈ 0.17; 2-bit ≈ 0.35. Half floats are exact to ~2^-11.
  const std::map<TensorType, double> bound = {
      {TensorType::F32, 0.0},    {TensorType::F16, 3e-4},    {TensorType::BF16, 3e-3},
      {TensorType::Q8_0, 0.006}, {TensorType::Q8_1, 0.006},  {TensorType::Q8_K, 0.008},
      {TensorType::Q6_K, 0.025}, {TensorType::Q5_0, 0.045},  {TensorType::Q5_1, 0.045},
      {TensorType::Q5_K, 0.045}, {TensorType::Q4_0, 0.095},  {TensorType::Q4_1, 0.09},
      {TensorType::Q4_K, 0.09},  {TensorType::IQ4_NL, 0.09}, {TensorType::IQ4_XS, 0.09},
      {TensorType::Q3_K, 0.2},   {TensorType::Q2_K, 0.4},
  };
  std::vector<float> x = test::random_floats(256 * 64, 42);
  for (const auto& [type, max_error] : bound) {
    double e = relative_rms_error(type, x);
    EXPECT_LE(e, max_error) << gguf::type_name(type);
    std::printf("  %-7s relative RMS error %.5f (bound %.4f)\n",
                std::string(gguf::type_name(type)).c_str(), e, max_error);
  }
}

TEST(Quantize, ZerosAndConstantsSurvive) {
  for (TensorType type : test::compute_types()) {
    SCOPED_TRACE(gguf::type_name(type));
    for (float value : {0.0f, 1.5f, -3.0f}) {
      std::vector<float> x(256, value);
      std::vector<uint8_t> q(gguf::bytes_for(type, 256));
      cpu::reference::quantize_row(type, x.data(), q.data(), 256);
      std::vector<float> y(256);
      cpu::reference::dequantize_row(type, q.data(), y.data(), 256);
      for (float v : y) ASSERT_NEAR(v, value, std::fabs(value) * 0.02 + 1e-6);
    }
  }
}

TEST(Quantize, Q8_0MatchesTheGgmlRounding) {
  // Q8_0: d = amax/127 (stored as fp16), q = round(x/d); the extreme maps to ±127.
  std::vector<float> x = test::random_floats(32, 3);
  x[5] = -4.0f;
  std::vector<uint8_t> q(34);
  cpu::reference::quantize_row(TensorType::Q8_0, x.data(), q.data(), 32);
  EXPECT_EQ(static_cast<int8_t>(q[2 + 5]), -127);
}

// The activation quantiser each level uses equals the reference bit for bit, ties included.
TEST(Quantize, ActivationQuantisersMatchTheReference) {
  std::vector<float> x = test::random_floats(32 * 40, 11);
  // Blocks whose scale is exactly 1 (max |x| = 127), with values on .5 ties of both signs.
  for (int j = 0; j < 64; ++j) x[j] = j == 0 ? 127.0f : (j % 2 ? 1 : -1) * (0.5f + (j % 13));
  for (int j = 64; j < 96; ++j) x[j] = 0;     // an all-zero block
  x[256 + 5] = -50, x[256 + 9] = 50;          // the largest magnitude twice: the first one counts
  for (int j = 768; j < 1024; ++j) x[j] = 0;  // an all-zero super-block
  for (cpu::Isa isa : cpu::available_isas()) {
    for (gguf::TensorType type : {gguf::TensorType::Q4_0, gguf::TensorType::Q4_K}) {
      const cpu::TypeKernels* k = cpu::find_kernels(type, isa);
      std::vector<uint8_t> got(gguf::bytes_for(k->act_type, x.size())), want(got.size());
      k->quantize_act(x.data(), got.data(), static_cast<int64_t>(x.size()));
      cpu::reference::quantize_row(k->act_type, x.data(), want.data(),
                                   static_cast<int64_t>(x.size()));
      EXPECT_EQ(got, want) << cpu::isa_name(isa) << " " << gguf::type_name(k->act_type);
    }
  }
}

TEST(Quantize, UnsupportedTypesThrow) {
  float x[256] = {};
  uint8_t out[512];
  EXPECT_THROW(cpu::reference::quantize_row(TensorType::IQ2_XXS, x, out, 256),
               std::invalid_argument);
  EXPECT_THROW(cpu::reference::dequantize_row(TensorType::IQ2_XXS, out, x, 256),
               std::invalid_argument);
  EXPECT_FALSE(cpu::reference::can_quantize(TensorType::TQ1_0));
  EXPECT_TRUE(cpu::reference::can_dequantize(TensorType::Q6_K));
}
