// A Vulkan device ready for compute: the instance, one logical device with a compute queue,
// storage buffers, compute pipelines built from the SPIR-V embedded at build time
// (kernels/vulkan/shaders/*.comp), and a command stream that records dispatches with the
// barriers between them and submits them at once. This is the layer the device backend of
// model/ is built on; it knows nothing of models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/vulkan/api.h"
#include "kernels/vulkan/device_info.h"

namespace ember::vulkan {

class Context;

// A storage buffer. On devices whose memory the host can map (lavapipe, integrated GPUs, and
// any buffer created host-visible) write() and read() copy directly; device-local buffers are
// filled and read through a staging copy by the context.
class Buffer {
 public:
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  size_t size() const { return size_; }
  VkBuffer handle() const { return buffer_; }
  bool host_visible() const { return mapped_ != nullptr; }
  // Copies `bytes` to/from the buffer at `offset`; throws std::out_of_range beyond its size.
  void write(const void* src, size_t bytes, size_t offset = 0);
  void read(void* dst, size_t bytes, size_t offset = 0) const;

 private:
  friend class Context;
  Buffer(Context& context, size_t size, bool host_visible);
  // Non-coherent memory: flush what the host wrote, or invalidate before the host reads.
  void sync_mapping(bool to_device) const;
  Context& context_;
  size_t size_;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  void* mapped_ = nullptr;
  bool coherent_ = true;
};

// One compute shader as embedded: its SPIR-V, how many storage buffers it binds (bindings
// 0..n−1 of set 0) and the size of its push constants.
struct ShaderCode {
  const char* name;
  const unsigned char* spirv;
  size_t bytes;
  uint32_t buffers;
  uint32_t push_bytes;
};

// A pipeline: the shader with its workgroup size fixed by specialization constant 0.
struct Pipeline {
  VkPipeline pipeline = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  uint32_t buffers = 0, push_bytes = 0, workgroup = 0;
};

class Context {
 public:
  // Opens device `index` as gpu-info numbers them (−1: the first discrete or integrated GPU,
  // else the first device). Throws std::runtime_error saying why it cannot.
  static std::unique_ptr<Context> open(int index = -1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& info() const { return info_; }
  const Api& api() const { return api_; }
  VkDevice device() const { return device_; }

  // A storage buffer of `bytes` (at least 4), host-visible when asked or when the device's
  // memory is the host's anyway.
  std::unique_ptr<Buffer> buffer(size_t bytes, bool host_visible = false);
  // The pipeline of `shader` with `workgroup` invocations along x (0: the device's subgroup size
  // times 8, within 64..256; rounded down to a power of two), built once and kept.
  const Pipeline& pipeline(const ShaderCode& shader, uint32_t workgroup = 0);

  // Records dispatches into one command buffer; run() submits and waits. Every dispatch is
  // separated from the previous one by a compute→compute memory barrier (the forward pass is a
  // chain of dependent ops).
  void dispatch(const Pipeline& p, const std::vector<const Buffer*>& buffers, const void* push,
                uint32_t groups_x, uint32_t groups_y = 1, uint32_t groups_z = 1);
  void copy(const Buffer& from, const Buffer& to, size_t bytes, size_t from_offset = 0,
            size_t to_offset = 0);
  void run();

 private:
  friend class Buffer;
  Context() = default;
  uint32_t memory_type(uint32_t allowed, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid,
                       bool& found) const;
  void begin_if_needed();

  Api api_;
  DeviceInfo info_;
  std::unique_ptr<Instance> instance_;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkPhysicalDeviceMemoryProperties memory_{};
  bool unified_memory_ = false;  // every device-local type is host-visible too
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkCommandBuffer commands_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
  bool recording_ = false;
  uint32_t sets_in_pool_ = 0;
  std::map<std::string, Pipeline> pipelines_;  // by shader name and workgroup size
};

}  // namespace ember::vulkan
