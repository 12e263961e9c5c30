// Vulkan compute against plain loops, on lavapipe in CI (Mesa's Vulkan on the CPU). Without any
// Vulkan device the tests skip, unless EMBER_REQUIRE_VULKAN=1 (CTest sets it: CI must not pass
// them by skipping).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>

#include "kernels/vulkan/context.h"
#include "kernels/vulkan/shaders.h"
#include "tests/kernels/kernel_test_util.h"

using namespace ember;

namespace {

std::unique_ptr<vulkan::Context> open_device() {
  try {
    return vulkan::Context::open();
  } catch (const std::exception& e) {
    const char* require = std::getenv("EMBER_REQUIRE_VULKAN");
    if (require && std::string(require) == "1") ADD_FAILURE() << "no Vulkan device: " << e.what();
    return nullptr;
  }
}

// Σ(a−b)² / Σb², the measure of a kernel's error.
double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? num / den : num;
}

}  // namespace

TEST(Vulkan, ContextReportsTheDevice) {
  auto vk = open_device();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  EXPECT_FALSE(vk->info().name.empty());
  EXPECT_GT(vk->info().subgroup_size, 0u);
  // A buffer round trip.
  auto b = vk->buffer(1000);
  std::vector<float> in = test::random_floats(250, 1), out(250);
  b->write(in.data(), 1000);
  b->read(out.data(), 1000);
  EXPECT_EQ(in, out);
}

TEST(Vulkan, MatvecF32MatchesTheReference) {
  auto vk = open_device();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  struct Shape {
    uint32_t rows, cols, tokens;
  };
  // Awkward sizes: one element, columns not a multiple of the workgroup, several tokens, and
  // more rows than one dispatch dimension may hold (the shader strides over them).
  for (const Shape s :
       {Shape{1, 1, 1}, Shape{7, 33, 1}, Shape{300, 1000, 3}, Shape{70001, 17, 2}}) {
    SCOPED_TRACE(std::to_string(s.rows) + " x " + std::to_string(s.cols) + " x " +
                 std::to_string(s.tokens));
    const std::vector<float> w = test::random_floats(int64_t(s.rows) * s.cols, 2),
                             x = test::random_floats(int64_t(s.tokens) * s.cols, 3);
    std::vector<double> want(size_t(s.tokens) * s.rows);
    for (uint32_t t = 0; t < s.tokens; ++t)
      for (uint32_t r = 0; r < s.rows; ++r) {
        double sum = 0;
        for (uint32_t c = 0; c < s.cols; ++c)
          sum += double(w[size_t(r) * s.cols + c]) * x[size_t(t) * s.cols + c];
        want[size_t(t) * s.rows + r] = sum;
      }
    auto bw = vk->buffer(w.size() * 4), bx = vk->buffer(x.size() * 4),
         by = vk->buffer(want.size() * 4);
    bw->write(w.data(), w.size() * 4);
    bx->write(x.data(), x.size() * 4);
    const uint32_t push[2] = {s.rows, s.cols};
    vk->dispatch(vk->pipeline(vulkan::shaders::matvec_f32()), {bw.get(), bx.get(), by.get()}, push,
                 std::min<uint32_t>(s.rows, 65535), s.tokens);
    vk->run();
    std::vector<float> got(want.size());
    by->read(got.data(), got.size() * 4);
    EXPECT_LE(relative_error(got, want), 1e-10);
  }
}
