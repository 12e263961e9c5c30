// Each op of the device backends (Vulkan, OpenCL) against the CPU backend and the plain
// references, on random data of awkward sizes, every block format, on lavapipe and PoCL in CI
// (Vulkan and OpenCL on the CPU). The error measure is Σ(a−b)²/Σb²; the gates are far inside the
// issues' 5e-4 (matrix products, attention) and 1e-6 (element-wise), since both sides compute in
// float from the same inputs. Without a device of the kind the tests skip, unless
// EMBER_REQUIRE_VULKAN=1 / EMBER_REQUIRE_OPENCL=1 (CTest sets them).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <deque>
#include <memory>
#include <numeric>

#include "kernels/cpu/reference.h"
#include "model/backends/cpu_backend.h"
#include "model/backends/make_backend.h"
#include "model/backends/opencl_backend.h"
#include "model/backends/vulkan_backend.h"
#include "tests/kernels/kernel_test_util.h"

using namespace ember;
using model::Tensor;

namespace {

// A device backend of `kind` ("vulkan" or "opencl"), or null (a failure when required).
std::unique_ptr<model::DeviceBackend> open_device(const std::string& kind,
                                                  size_t max_buffer_bytes = 0,
                                                  uint32_t workgroup = 0) {
  try {
    if (kind == "vulkan")
      return std::make_unique<model::VulkanBackend>(
          model::VulkanOptions{-1, max_buffer_bytes, workgroup});
    return std::make_unique<model::OpenClBackend>(
        model::OpenClOptions{-1, max_buffer_bytes, workgroup});
  } catch (const std::exception& e) {
    const char* require =
        std::getenv(kind == "vulkan" ? "EMBER_REQUIRE_VULKAN" : "EMBER_REQUIRE_OPENCL");
    if (require && std::string(require) == "1")
      ADD_FAILURE() << "no " << kind << " device: " << e.what();
    return nullptr;
  }
}

class DeviceBackends : public ::testing::TestWithParam<std::string> {};

template <class A, class B>
double relative_error(const A& a, const B& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    den += double(b[i]) * double(b[i]);
  }
  return den > 0 ? num / den : num;
}

// Tensors made from host data, kept alive as long as the backends may cache them.
class Tensors {
 public:
  // A weight of `type` with shape [cols, rows(, experts)] over `bytes`.
  model::Weight weight(gguf::TensorType type, std::vector<uint64_t> shape,
                       std::vector<uint8_t> bytes) {
    data_.push_back(std::move(bytes));
    gguf::TensorInfo& info = infos_.emplace_back();
    names_.push_back("w" + std::to_string(infos_.size()));
    info.name = names_.back();
    info.type = type;
    info.n_dims = static_cast<uint32_t>(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) info.shape[i] = shape[i];
    info.bytes = data_.back().size();
    info.data = data_.back().data();
    return {&info, 0, 0};
  }
  model::Weight floats(const std::vector<float>& v, int64_t rows = 1) {
    std::vector<uint8_t> bytes(v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    return weight(gguf::TensorType::F32, {uint64_t(v.size() / rows), uint64_t(rows)}, bytes);
  }
  // A [rows, cols] activation in `b` holding `v` (through embed of an F32 table).
  Tensor put(model::Backend& b, const std::vector<float>& v, int64_t rows) {
    model::Weight table = floats(v, rows);
    Tensor t = b.alloc(rows, static_cast<int64_t>(v.size()) / rows);
    std::vector<int32_t> ids(rows);
    std::iota(ids.begin(), ids.end(), 0);
    b.embed(table, ids, 1.0f, t);
    return t;
  }

 private:
  std::deque<std::vector<uint8_t>> data_;
  std::deque<gguf::TensorInfo> infos_;
  std::deque<std::string> names_;
};

std::vector<float> get(model::Backend& b, const Tensor& t) {
  std::vector<float> out(size_t(t.rows * t.cols));
  b.read_rows(t, 0, t.rows, out.data());
  return out;
}

int64_t awkward_cols(gguf::TensorType type) {
  using T = gguf::TensorType;
  if (type == T::F32 || type == T::F16 || type == T::BF16) return 77;  // not a chunk of 16
  const bool k_family = type == T::Q2_K || type == T::Q3_K || type == T::Q4_K || type == T::Q5_K ||
                        type == T::Q6_K || type == T::IQ4_XS;
  return k_family ? 768 : 160;  // 3 super-blocks, 5 blocks
}

}  // namespace

// y = W·x for every block format against a float64 reference over the exactly dequantised
// weights, for 1 to 11 tokens (the shader's tile is 8); with the workgroup chosen for the device
// and with 64 invocations (what GPUs get); also when a 600-row tensor is split over buffers of
// 9 KiB (3 to 100 rows each) and only a slice of its rows crossing them is asked for (phi3's fused
// q/k/v).
TEST_P(DeviceBackends, MatmulEveryFormat) {
  struct Config {
    bool split;
    uint32_t workgroup;
  };
  for (const Config config : {Config{false, 0}, Config{false, 64}, Config{true, 0}}) {
    // 9 KiB: three rows of the widest input (768 floats, put() as an F32 table).
    auto vk = open_device(GetParam(), config.split ? 3 * 768 * 4 + 16 : 0, config.workgroup);
    if (!vk) GTEST_SKIP() << "no " << GetParam() << " device";
    Tensors t;  // as long as the backend: it keeps device copies by tensor
    for (gguf::TensorType type : test::compute_types()) {
      SCOPED_TRACE(std::string(gguf::type_name(type)) + (config.split ? " split" : "") +
                   " workgroup " + std::to_string(config.workgroup));
      const int64_t rows = config.split ? 600 : 37, cols = awkward_cols(type);
      const size_t row_bytes = gguf::bytes_for(type, cols);
      std::vector<uint8_t> w;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<uint8_t> row = test::random_row(type, cols, uint32_t(r + 1));
        w.insert(w.end(), row.begin(), row.end());
      }
      model::Weight weight = t.weight(type, {uint64_t(cols), uint64_t(rows)}, w);
      const model::Weight slice = config.split ? weight.slice(50, 400) : weight;
      for (int64_t tokens : {1, 3, 8, 11}) {
        std::vector<float> x = test::random_floats(tokens * cols, uint32_t(100 + tokens));
        Tensor xt = t.put(*vk, x, tokens), yt = vk->alloc(tokens, slice.rows());
        vk->matmul(slice, xt, yt);
        std::vector<float> y = get(*vk, yt);
        std::vector<double> want;
        for (int64_t k = 0; k < tokens; ++k)
          for (int64_t r = 0; r < slice.rows(); ++r)
            want.push_back(cpu::reference::dot(type, slice.data() + r * row_bytes,
                                               gguf::TensorType::F32, x.data() + k * cols, cols));
        EXPECT_LE(relative_error(y, want), 1e-10) << tokens << " tokens";
        vk->reset_scratch();
      }
    }
  }
}

// Embedding rows of every format, scaled (gemma), equal the reference dequantisation.
TEST_P(DeviceBackends, EmbedEveryFormat) {
  auto vk = open_device(GetParam());
  if (!vk) GTEST_SKIP() << "no " << GetParam() << " device";
  Tensors t;
  for (gguf::TensorType type : test::compute_types()) {
    SCOPED_TRACE(gguf::type_name(type));
    const int64_t rows = 9, cols = awkward_cols(type);
    std::vector<uint8_t> w;
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<uint8_t> row = test::random_row(type, cols, uint32_t(r + 7));
      w.insert(w.end(), row.begin(), row.end());
    }
    model::Weight table = t.weight(type, {uint64_t(cols), uint64_t(rows)}, w);
    const std::vector<int32_t> ids = {8, 0, 3, 3};
    Tensor out = vk->alloc(4, cols);
    vk->embed(table, ids, 1.5f, out);
    std::vector<float> got = get(*vk, out), want(got.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      cpu::reference::dequantize_row(type, w.data() + ids[i] * gguf::bytes_for(type, cols),
                                     want.data() + i * cols, cols);
      for (int64_t c = 0; c < cols; ++c) want[i * cols + c] *= 1.5f;
    }
    EXPECT_LE(relative_error(got, want), 1e-12);
    vk->reset_scratch();
  }
}

namespace {

// Runs `op` on both backends over the same inputs and returns the two results.
struct Both {
  explicit Both(const std::string& kind) : vk(open_device(kind)) {}
  model::CpuBackend cpu{2};
  std::unique_ptr<model::DeviceBackend> vk;
  Tensors t;
  std::pair<Tensor, Tensor> put(const std::vector<float>& v, int64_t rows) {
    return {t.put(cpu, v, rows), t.put(*vk, v, rows)};
  }
  std::pair<Tensor, Tensor> alloc(int64_t rows, int64_t cols) {
    return {cpu.alloc(rows, cols), vk->alloc(rows, cols)};
  }
  double error(const std::pair<Tensor, Tensor>& x) {
    return relative_error(get(*vk, x.second), get(cpu, x.first));
  }
};

}  // namespace

TEST_P(DeviceBackends, ElementwiseOpsMatchTheCpu) {
  Both b(GetParam());
  if (!b.vk) GTEST_SKIP() << "no " << GetParam() << " device";
  const int64_t rows = 5, cols = 300;
  const std::vector<float> xv = test::random_floats(rows * cols, 1),
                           yv = test::random_floats(rows * cols, 2);
  auto x = b.put(xv, rows), y = b.put(yv, rows);
  const model::Weight norm = b.t.floats(test::random_floats(cols, 3)),
                      bias = b.t.floats(test::random_floats(cols, 4));

  auto out = b.alloc(rows, cols);
  b.cpu.rms_norm(x.first, norm, 1e-5f, out.first);
  b.vk->rms_norm(x.second, norm, 1e-5f, out.second);
  EXPECT_LE(b.error(out), 1e-12) << "rms_norm";
  // In place, per 60-wide head (q/k norm).
  auto heads = b.put(xv, rows);
  const model::Weight head_norm = b.t.floats(test::random_floats(60, 5));
  b.cpu.rms_norm(heads.first.reshaped(60), head_norm, 1e-6f, heads.first.reshaped(60));
  b.vk->rms_norm(heads.second.reshaped(60), head_norm, 1e-6f, heads.second.reshaped(60));
  EXPECT_LE(b.error(heads), 1e-12) << "rms_norm per head, in place";

  for (model::Activation act : {model::Activation::kSilu, model::Activation::kGeluTanh}) {
    auto g = b.alloc(rows, cols);
    b.cpu.glu(x.first, y.first, act, g.first);
    b.vk->glu(x.second, y.second, act, g.second);
    EXPECT_LE(b.error(g), 1e-12) << "glu " << int(act);
  }

  auto sum = b.put(xv, rows);
  b.cpu.add(sum.first, y.first);
  b.vk->add(sum.second, y.second);
  b.cpu.add_bias(sum.first, bias);
  b.vk->add_bias(sum.second, bias);
  const std::vector<float> scales = {0.5f, 0.0f, -2.0f, 1.0f, 0.0f};
  b.cpu.add_scaled_rows(sum.first, y.first, scales);
  b.vk->add_scaled_rows(sum.second, y.second, scales);
  EXPECT_LE(b.error(sum), 1e-12) << "add, add_bias, add_scaled_rows";

  auto gate = b.put(test::random_floats(rows, 6), rows);
  auto scaled = b.put(xv, rows);
  b.cpu.scale_rows_sigmoid(scaled.first, gate.first);
  b.vk->scale_rows_sigmoid(scaled.second, gate.second);
  EXPECT_LE(b.error(scaled), 1e-12) << "scale_rows_sigmoid";

  const std::vector<int32_t> picked = {4, 0, 2};
  auto copied = b.alloc(3, cols);
  b.cpu.copy_rows(x.first, picked, copied.first);
  b.vk->copy_rows(x.second, picked, copied.second);
  EXPECT_EQ(b.error(copied), 0.0) << "copy_rows";
}

// Both rotation layouts, partial rotation (48 of 64 dimensions, phi3), a magnitude (YaRN,
// LongRoPE), and positions far enough out that float angles would lose precision.
TEST_P(DeviceBackends, RopeMatchesTheCpu) {
  Both b(GetParam());
  if (!b.vk) GTEST_SKIP() << "no " << GetParam() << " device";
  const std::vector<int32_t> positions = {0, 7, 1000, 40000, 131000};
  const int n_heads = 3, head_dim = 64;
  model::RopeTable table;
  for (int i = 0; i < 24; ++i) table.inv_freq.push_back(std::pow(10000.0, -2.0 * i / 48));
  table.mscale = 1.19f;
  for (model::RopeStyle style : {model::RopeStyle::kNormal, model::RopeStyle::kNeox}) {
    auto x = b.put(test::random_floats(5 * n_heads * head_dim, 9), 5);
    b.cpu.rope(x.first, positions, n_heads, table, style);
    b.vk->rope(x.second, positions, n_heads, table, style);
    EXPECT_LE(b.error(x), 1e-12) << "style " << int(style);
  }
}

// Attention over a cache written in two steps, for two sequences, with GQA, a sliding window
// and a soft-cap, in both cache types; head sizes 64, 128 and 256 (gemma).
TEST_P(DeviceBackends, AttentionMatchesTheCpu) {
  struct Case {
    int n_head, n_head_kv, head_dim, window;
    float softcap;
  };
  for (const Case c : {Case{4, 2, 64, 0, 0}, Case{4, 1, 128, 5, 0}, Case{2, 2, 256, 0, 50.0f},
                       Case{6, 3, 64, 3, 30.0f}}) {
    for (model::CacheType cache : {model::CacheType::kF16, model::CacheType::kF32}) {
      SCOPED_TRACE("head_dim " + std::to_string(c.head_dim) + " window " +
                   std::to_string(c.window) + (cache == model::CacheType::kF16 ? " F16" : " F32"));
      Both b(GetParam());
      if (!b.vk) GTEST_SKIP() << "no " << GetParam() << " device";
      const int kv_dim = c.n_head_kv * c.head_dim, q_dim = c.n_head * c.head_dim;
      b.cpu.init_cache(2, 96, c.n_head_kv, c.head_dim, cache, 2);
      b.vk->init_cache(2, 96, c.n_head_kv, c.head_dim, cache, 2);
      // Step 1: 70 prompt tokens of sequence 1 (more than one 64-key chunk); step 2: one token of
      // sequence 0 at position 0, then three more of sequence 1.
      std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> steps;
      std::vector<int32_t> p1(70), s1(70, 1);
      std::iota(p1.begin(), p1.end(), 0);
      steps.push_back({p1, s1});
      steps.push_back({{0, 70, 71, 72}, {0, 1, 1, 1}});
      uint32_t seed = 20;
      for (const auto& [positions, seqs] : steps) {
        const int64_t n = static_cast<int64_t>(positions.size());
        auto k = b.put(test::random_floats(n * kv_dim, seed++), n);
        auto v = b.put(test::random_floats(n * kv_dim, seed++), n);
        auto q = b.put(test::random_floats(n * q_dim, seed++, 0.3f), n);
        b.cpu.store_kv(1, k.first, v.first, positions, seqs);
        b.vk->store_kv(1, k.second, v.second, positions, seqs);
        auto out = b.alloc(n, q_dim);
        const float scale = 1.0f / std::sqrt(float(c.head_dim));
        b.cpu.attention(1, q.first, positions, seqs, c.n_head, c.n_head_kv, c.head_dim, scale,
                        c.softcap, c.window, out.first);
        b.vk->attention(1, q.second, positions, seqs, c.n_head, c.n_head_kv, c.head_dim, scale,
                        c.softcap, c.window, out.second);
        EXPECT_LE(b.error(out), 1e-10) << n << " tokens";
        b.cpu.reset_scratch();
        b.vk->reset_scratch();
      }
    }
  }
}

// The q8_0 KV cache is the CPU's for now: a device refuses it with what to use instead, and the
// CPU refuses rows that are not whole Q8_0 blocks.
TEST_P(DeviceBackends, Q8_0CacheIsAClearErrorOnTheDevice) {
  Both b(GetParam());
  EXPECT_THROW(b.cpu.init_cache(1, 16, 1, 48, model::CacheType::kQ8_0, 1), std::runtime_error);
  b.cpu.init_cache(1, 16, 1, 64, model::CacheType::kQ8_0, 1);
  if (!b.vk) GTEST_SKIP() << "no " << GetParam() << " device";
  try {
    b.vk->init_cache(1, 16, 1, 64, model::CacheType::kQ8_0, 1);
    ADD_FAILURE() << "the device took a q8_0 cache";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--cache-type f16"), std::string::npos) << e.what();
  }
}

// The mixture-of-experts FFN (routing, per-expert products, weighted sum) with the expert
// tensors split over buffers of two experts, renormalised or not.
TEST_P(DeviceBackends, MoeFfnMatchesTheCpu) {
  const int n_expert = 5, n_embd = 96, n_ff = 64, tokens = 7;
  for (bool norm : {true, false}) {
    Both b(GetParam());
    if (!b.vk) GTEST_SKIP() << "no " << GetParam() << " device";
    b.vk = open_device(GetParam(), size_t(2) * n_ff * n_embd * 4 + 16);
    model::HyperParams hp;
    hp.n_expert = n_expert;
    hp.n_expert_used = 2;
    hp.n_ff_expert = n_ff;
    hp.expert_weights_norm = norm;
    hp.activation = model::Activation::kSilu;
    model::LayerWeights w;
    auto experts = [&](int64_t cols, int64_t rows, uint32_t seed) {
      std::vector<float> v = test::random_floats(int64_t(n_expert) * rows * cols, seed, 0.2f);
      std::vector<uint8_t> bytes(v.size() * 4);
      std::memcpy(bytes.data(), v.data(), bytes.size());
      return b.t.weight(gguf::TensorType::F32, {uint64_t(cols), uint64_t(rows), uint64_t(n_expert)},
                        bytes);
    };
    w.ffn_gate_exps = experts(n_embd, n_ff, 1);
    w.ffn_up_exps = experts(n_embd, n_ff, 2);
    w.ffn_down_exps = experts(n_ff, n_embd, 3);
    auto x = b.put(test::random_floats(tokens * n_embd, 4), tokens);
    auto router = b.put(test::random_floats(tokens * n_expert, 5), tokens);
    auto out = b.alloc(tokens, n_embd);
    b.cpu.moe_ffn(w, hp, x.first, router.first, out.first);
    b.vk->moe_ffn(w, hp, x.second, router.second, out.second);
    EXPECT_LE(b.error(out), 1e-10) << (norm ? "renormalised" : "plain");
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, DeviceBackends, ::testing::Values("vulkan", "opencl"),
                         [](const auto& info) { return info.param; });

// --backend auto falls back to the CPU when the device it chose cannot be opened; a device asked
// for by name is an error instead.
TEST(MakeBackends, AutomaticFallsBackToTheCpuOnlyWhenChosenAutomatically) {
  model::BackendSpec spec{"vulkan", 999, 1};
  spec.automatic = true;
  model::Backends b = model::make_backends(spec);
  EXPECT_NE(dynamic_cast<model::CpuBackend*>(b.main.get()), nullptr);
  spec.automatic = false;
  EXPECT_THROW(model::make_backends(spec), std::runtime_error);
}
