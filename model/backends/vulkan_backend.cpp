#include "model/backends/vulkan_backend.h"

#include <algorithm>
#include <vector>

#include "kernels/vulkan/shaders.h"

namespace ember::model {
namespace {

struct VulkanBuffer : DeviceBuffer {
  std::unique_ptr<vulkan::Buffer> buffer;
  explicit VulkanBuffer(std::unique_ptr<vulkan::Buffer> b) : buffer(std::move(b)) {}
  size_t size() const override { return buffer->size(); }
};

vulkan::Buffer& vk(const DeviceBuffer& b) {
  return *static_cast<const VulkanBuffer&>(b).buffer;
}

}  // namespace

VulkanDevice::VulkanDevice(const VulkanOptions& options)
    : ctx_(vulkan::Context::open(options.device)) {
  const vulkan::DeviceInfo& info = ctx_->info();
  limits_.name = info.name;
  limits_.type = info.type;
  limits_.max_buffer_bytes = info.max_storage_buffer_range;
  for (const vulkan::MemoryHeap& heap : info.heaps)
    if (heap.device_local) limits_.memory = std::max(limits_.memory, heap.size);
  // On a CPU-type device (lavapipe) each subgroup of a workgroup is a coroutine and every
  // barrier of a reduction switches between them: workgroups of one subgroup run the forward
  // pass 3.5× faster there. GPUs take the context's default (a few subgroups).
  uint32_t workgroup = options.workgroup    ? options.workgroup
                       : info.type == "cpu" ? std::max<uint32_t>(info.subgroup_size, 4)
                                            : 0;
  limits_.workgroup = ctx_->pipeline(vulkan::shaders::find("add", 3, 28), workgroup).workgroup;
  limits_.attention_workgroup = std::max<uint32_t>(limits_.workgroup, 32);
}

std::unique_ptr<DeviceBuffer> VulkanDevice::buffer(size_t bytes, bool host_visible) {
  return std::make_unique<VulkanBuffer>(ctx_->buffer(bytes, host_visible));
}

void VulkanDevice::write(DeviceBuffer& to, const void* data, size_t bytes, size_t offset) {
  vk(to).write(data, bytes, offset);
}

void VulkanDevice::copy(const DeviceBuffer& from, DeviceBuffer& to, size_t bytes,
                        size_t from_offset, size_t to_offset) {
  ctx_->copy(vk(from), vk(to), bytes, from_offset, to_offset);
}

void VulkanDevice::launch(const std::string& name,
                          std::initializer_list<const DeviceBuffer*> buffers, const void* params,
                          size_t params_bytes, uint32_t groups_x, uint32_t groups_y,
                          uint32_t workgroup) {
  const vulkan::Pipeline*& p = pipelines_[{name, workgroup}];
  if (!p)
    p = &ctx_->pipeline(vulkan::shaders::find(name, static_cast<uint32_t>(buffers.size()),
                                              static_cast<uint32_t>(params_bytes)),
                        workgroup);
  std::vector<const vulkan::Buffer*> bound;
  for (const DeviceBuffer* b : buffers) bound.push_back(&vk(*b));
  ctx_->dispatch(*p, bound, params, groups_x, groups_y);
}

void VulkanDevice::read(const DeviceBuffer& from, void* data, size_t bytes, size_t offset) {
  vk(from).read(data, bytes, offset);
}

VulkanBackend::VulkanBackend(const VulkanOptions& options)
    : DeviceBackend(std::make_unique<VulkanDevice>(options), options.max_buffer_bytes) {}

VulkanDevice& VulkanBackend::vulkan() const {
  return static_cast<VulkanDevice&>(compute_device());
}

}  // namespace ember::model
