// The scalar half/bfloat16 conversions against exhaustive round trips and the CPU's own F16C.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/fp16.h"

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("f16c"))) static uint16_t hardware_f32_to_fp16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) static float hardware_fp16_to_f32(uint16_t h) {
  return _cvtsh_ss(h);
}
#endif

using namespace ember::cpu;

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_fp16(f), h) << std::hex << h;
  }
}

TEST(Fp16, MatchesF16cOnRandomFloats) {
#if defined(__x86_64__)
  if (!cpu_features().f16c) GTEST_SKIP() << "no F16C on this CPU";
  for (uint32_t h = 0; h < 65536; ++h) {
    float hw = hardware_fp16_to_f32(static_cast<uint16_t>(h));
    float sw = fp16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(hw))
      EXPECT_TRUE(std::isnan(sw));
    else
      EXPECT_EQ(std::bit_cast<uint32_t>(hw), std::bit_cast<uint32_t>(sw)) << h;
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2000000; ++i) {
    float f = std::bit_cast<float>(bits(rng));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_fp16(f), hardware_f32_to_fp16(f)) << f;
  }
#else
  GTEST_SKIP() << "x86 only";
#endif
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie → even
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie → even (up)
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  for (uint32_t b = 0; b < 65536; ++b) {
    float f = bf16_to_f32(static_cast<uint16_t>(b));
    if (!std::isnan(f)) EXPECT_EQ(f32_to_bf16(f), b);
  }
}
