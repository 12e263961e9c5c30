// The Vulkan backend: the device backend (device_backend.h) over a Vulkan compute context
// (kernels/vulkan/context.h) and the compute shaders of kernels/vulkan/shaders.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "kernels/vulkan/context.h"
#include "model/backends/device_backend.h"

namespace ember::model {

struct VulkanOptions {
  int device = -1;  // as `ember gpu-info` numbers them (−1: the first discrete or integrated
                    // GPU, else the first device)
  // The largest buffer a weight may use, below the device's maxStorageBufferRange (0: that
  // range); tests lower it to reach the splitting.
  size_t max_buffer_bytes = 0;
  uint32_t workgroup = 0;  // invocations per workgroup (0: chosen for the device)
};

// ComputeDevice over a vulkan::Context: a launch is a dispatch recorded into the context's
// command buffer (with a barrier before it), finish() submits and waits.
class VulkanDevice : public ComputeDevice {
 public:
  // Throws std::runtime_error saying why the device cannot be opened.
  explicit VulkanDevice(const VulkanOptions& options);
  const Limits& limits() const override { return limits_; }
  std::unique_ptr<DeviceBuffer> buffer(size_t bytes, bool host_visible) override;
  void write(DeviceBuffer& to, const void* data, size_t bytes, size_t offset) override;
  void copy(const DeviceBuffer& from, DeviceBuffer& to, size_t bytes, size_t from_offset,
            size_t to_offset) override;
  void launch(const std::string& name, std::initializer_list<const DeviceBuffer*> buffers,
              const void* params, size_t params_bytes, uint32_t groups_x, uint32_t groups_y,
              uint32_t workgroup) override;
  void finish() override { ctx_->run(); }
  void read(const DeviceBuffer& from, void* data, size_t bytes, size_t offset) override;

  vulkan::Context& context() { return *ctx_; }

 private:
  std::unique_ptr<vulkan::Context> ctx_;
  Limits limits_;
  std::map<std::pair<std::string, uint32_t>, const vulkan::Pipeline*> pipelines_;
};

class VulkanBackend : public DeviceBackend {
 public:
  // Opens the device. Throws std::runtime_error saying why it cannot.
  explicit VulkanBackend(const VulkanOptions& options = {});
  const vulkan::DeviceInfo& device() const { return vulkan().context().info(); }
  vulkan::Context& context() { return vulkan().context(); }  // for benchmarks

 private:
  VulkanDevice& vulkan() const;
};

}  // namespace ember::model
