#include "kernels/vulkan/context.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

namespace ember::vulkan {
namespace {

constexpr uint32_t kMaxSetsPerBatch = 4096;  // descriptor sets one submission may use
constexpr uint32_t kMaxBuffersPerSet = 8;

}  // namespace

// ---- Buffer ----

Buffer::Buffer(Context& context, size_t size, bool host_visible) : context_(context), size_(size) {
  const Api& vk = context.api_;
  VkBufferCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  info.size = size;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(vk.vkCreateBuffer(context.device_, &info, nullptr, &buffer_), "vkCreateBuffer");
  VkMemoryRequirements req{};
  vk.vkGetBufferMemoryRequirements(context.device_, buffer_, &req);
  // Host-visible memory: coherent if there is such, device-local too when it is the same
  // memory (lavapipe, integrated GPUs). Otherwise device-local, filled through staging copies.
  bool found = false;
  uint32_t type = 0;
  const bool mapped = host_visible || context.unified_memory_;
  if (mapped) {
    type = context.memory_type(
        req.memoryTypeBits,
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, 0, found);
    if (!found)
      type = context.memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT, 0, found);
  } else {
    type = context.memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0, found);
  }
  if (!found) throw std::runtime_error("the Vulkan device offers no suitable memory for a buffer");
  VkMemoryAllocateInfo alloc{};
  alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = type;
  check(vk.vkAllocateMemory(context.device_, &alloc, nullptr, &memory_),
        "allocating " + std::to_string((size + (1 << 20) - 1) >> 20) + " MiB on " +
            context.info_.name);
  check(vk.vkBindBufferMemory(context.device_, buffer_, memory_, 0), "vkBindBufferMemory");
  const VkMemoryPropertyFlags flags = context.memory_.memoryTypes[type].propertyFlags;
  coherent_ = flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  if (mapped)
    check(vk.vkMapMemory(context.device_, memory_, 0, VK_WHOLE_SIZE, 0, &mapped_), "vkMapMemory");
}

Buffer::~Buffer() {
  const Api& vk = context_.api_;
  if (mapped_) vk.vkUnmapMemory(context_.device_, memory_);
  if (buffer_) vk.vkDestroyBuffer(context_.device_, buffer_, nullptr);
  if (memory_) vk.vkFreeMemory(context_.device_, memory_, nullptr);
}

void Buffer::write(const void* src, size_t bytes, size_t offset) {
  if (offset + bytes > size_) throw std::out_of_range("write beyond a Vulkan buffer");
  if (!mapped_) {  // through a host-visible staging buffer
    auto staging = context_.buffer(bytes, true);
    staging->write(src, bytes);
    context_.copy(*staging, *this, bytes, 0, offset);
    context_.run();
    return;
  }
  std::memcpy(static_cast<char*>(mapped_) + offset, src, bytes);
  sync_mapping(true);
}

void Buffer::sync_mapping(bool to_device) const {
  if (coherent_) return;
  VkMappedMemoryRange range{};
  range.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE;
  range.memory = memory_;
  range.size = VK_WHOLE_SIZE;
  const Api& vk = context_.api_;
  (to_device ? vk.vkFlushMappedMemoryRanges : vk.vkInvalidateMappedMemoryRanges)(context_.device_,
                                                                                 1, &range);
}

void Buffer::read(void* dst, size_t bytes, size_t offset) const {
  if (offset + bytes > size_) throw std::out_of_range("read beyond a Vulkan buffer");
  if (!mapped_) {
    auto staging = context_.buffer(bytes, true);
    context_.copy(*this, *staging, bytes, offset, 0);
    context_.run();
    staging->read(dst, bytes);
    return;
  }
  sync_mapping(false);
  std::memcpy(dst, static_cast<const char*>(mapped_) + offset, bytes);
}

// ---- Context ----

std::unique_ptr<Context> Context::open(int index) {
  const Inventory inventory = list_devices();
  if (inventory.devices.empty()) throw std::runtime_error("no Vulkan device: " + inventory.error);
  if (index < 0) {
    index = 0;
    for (const DeviceInfo& d : inventory.devices)
      if (d.is_gpu()) {
        index = d.index;
        break;
      }
  }
  if (index >= static_cast<int>(inventory.devices.size()))
    throw std::runtime_error("there is no Vulkan device " + std::to_string(index) + " (there are " +
                             std::to_string(inventory.devices.size()) + "; see ember gpu-info)");

  std::unique_ptr<Context> c(new Context());
  c->info_ = inventory.devices[static_cast<size_t>(index)];
  std::string error;
  if (!c->api_.load_global(error)) throw std::runtime_error(error);
  const Api& vk = c->api_;
  c->instance_ = std::make_unique<Instance>(c->api_);

  uint32_t count = 0;
  vk.vkEnumeratePhysicalDevices(c->instance_->get(), &count, nullptr);
  std::vector<VkPhysicalDevice> physical(count);
  vk.vkEnumeratePhysicalDevices(c->instance_->get(), &count, physical.data());
  if (static_cast<uint32_t>(index) >= count)
    throw std::runtime_error("the Vulkan device list changed while ember started");
  c->physical_ = physical[static_cast<size_t>(index)];
  vk.vkGetPhysicalDeviceMemoryProperties(c->physical_, &c->memory_);
  c->unified_memory_ = true;
  for (uint32_t i = 0; i < c->memory_.memoryTypeCount; ++i) {
    const VkMemoryPropertyFlags f = c->memory_.memoryTypes[i].propertyFlags;
    if ((f & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && !(f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT))
      c->unified_memory_ = false;
  }

  uint32_t families = 0;
  vk.vkGetPhysicalDeviceQueueFamilyProperties(c->physical_, &families, nullptr);
  std::vector<VkQueueFamilyProperties> family(families);
  vk.vkGetPhysicalDeviceQueueFamilyProperties(c->physical_, &families, family.data());
  bool have_queue = false;
  for (uint32_t i = 0; i < families && !have_queue; ++i)
    if (family[i].queueFlags & VK_QUEUE_COMPUTE_BIT) c->queue_family_ = i, have_queue = true;
  if (!have_queue) throw std::runtime_error(c->info_.name + " has no compute queue");

  // The storage features the shaders may use, where the device has them.
  VkPhysicalDevice16BitStorageFeatures storage16{};
  storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
  storage16.storageBuffer16BitAccess = c->info_.storage_16bit;
  VkPhysicalDevice8BitStorageFeatures storage8{};
  storage8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
  storage8.storageBuffer8BitAccess = c->info_.storage_8bit;
  VkPhysicalDeviceShaderFloat16Int8Features f16i8{};
  f16i8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
  f16i8.shaderFloat16 = c->info_.float16;
  f16i8.shaderInt8 = c->info_.int8;
  if (c->info_.api >= VK_API_VERSION_1_2) {  // these structures are Vulkan 1.2
    storage16.pNext = &storage8;
    storage8.pNext = &f16i8;
  }
  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{};
  queue_info.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
  queue_info.queueFamilyIndex = c->queue_family_;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;
  VkDeviceCreateInfo device_info{};
  device_info.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  device_info.pNext = &storage16;
  device_info.queueCreateInfoCount = 1;
  device_info.pQueueCreateInfos = &queue_info;
  check(vk.vkCreateDevice(c->physical_, &device_info, nullptr, &c->device_), "vkCreateDevice");
  c->api_.load_device(c->device_);
  vk.vkGetDeviceQueue(c->device_, c->queue_family_, 0, &c->queue_);

  VkCommandPoolCreateInfo pool{};
  pool.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pool.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool.queueFamilyIndex = c->queue_family_;
  check(vk.vkCreateCommandPool(c->device_, &pool, nullptr, &c->command_pool_),
        "vkCreateCommandPool");
  VkCommandBufferAllocateInfo alloc{};
  alloc.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  alloc.commandPool = c->command_pool_;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  check(vk.vkAllocateCommandBuffers(c->device_, &alloc, &c->commands_), "vkAllocateCommandBuffers");
  VkFenceCreateInfo fence{};
  fence.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  check(vk.vkCreateFence(c->device_, &fence, nullptr, &c->fence_), "vkCreateFence");
  VkDescriptorPoolSize sizes{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                             kMaxSetsPerBatch * kMaxBuffersPerSet};
  VkDescriptorPoolCreateInfo dp{};
  dp.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
  dp.maxSets = kMaxSetsPerBatch;
  dp.poolSizeCount = 1;
  dp.pPoolSizes = &sizes;
  check(vk.vkCreateDescriptorPool(c->device_, &dp, nullptr, &c->descriptor_pool_),
        "vkCreateDescriptorPool");
  return c;
}

Context::~Context() {  // the instance (a member) goes last
  if (!device_) return;
  if (recording_) {  // never leave work half-submitted
    api_.vkEndCommandBuffer(commands_);
    recording_ = false;
  }
  for (auto& [key, p] : pipelines_) {
    api_.vkDestroyPipeline(device_, p.pipeline, nullptr);
    api_.vkDestroyPipelineLayout(device_, p.layout, nullptr);
    api_.vkDestroyDescriptorSetLayout(device_, p.set_layout, nullptr);
  }
  if (descriptor_pool_) api_.vkDestroyDescriptorPool(device_, descriptor_pool_, nullptr);
  if (fence_) api_.vkDestroyFence(device_, fence_, nullptr);
  if (command_pool_) api_.vkDestroyCommandPool(device_, command_pool_, nullptr);
  api_.vkDestroyDevice(device_, nullptr);
}

uint32_t Context::memory_type(uint32_t allowed, VkMemoryPropertyFlags want,
                              VkMemoryPropertyFlags avoid, bool& found) const {
  for (uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
    const VkMemoryPropertyFlags f = memory_.memoryTypes[i].propertyFlags;
    if ((allowed & (1u << i)) && (f & want) == want && !(f & avoid)) {
      found = true;
      return i;
    }
  }
  found = false;
  return 0;
}

std::unique_ptr<Buffer> Context::buffer(size_t bytes, bool host_visible) {
  return std::unique_ptr<Buffer>(new Buffer(*this, std::max<size_t>(bytes, 4), host_visible));
}

const Pipeline& Context::pipeline(const ShaderCode& shader, uint32_t workgroup) {
  if (workgroup == 0)
    workgroup = std::clamp<uint32_t>(info_.subgroup_size * 8, 64,
                                     std::min<uint32_t>(256, info_.max_workgroup_invocations));
  workgroup = std::bit_floor(workgroup);  // the shaders' tree reductions halve it
  const std::string key = std::string(shader.name) + "/" + std::to_string(workgroup);
  if (auto it = pipelines_.find(key); it != pipelines_.end()) return it->second;
  if (shader.buffers > kMaxBuffersPerSet)
    throw std::logic_error(std::string("shader ") + shader.name + " binds too many buffers");
  const Api& vk = api_;
  Pipeline p;
  p.buffers = shader.buffers;
  p.push_bytes = shader.push_bytes;
  p.workgroup = workgroup;
  std::vector<VkDescriptorSetLayoutBinding> bindings(shader.buffers);
  for (uint32_t i = 0; i < shader.buffers; ++i) {
    bindings[i].binding = i;
    bindings[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    bindings[i].descriptorCount = 1;
    bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo set_info{};
  set_info.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
  set_info.bindingCount = shader.buffers;
  set_info.pBindings = bindings.data();
  check(vk.vkCreateDescriptorSetLayout(device_, &set_info, nullptr, &p.set_layout),
        "vkCreateDescriptorSetLayout");
  VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, shader.push_bytes};
  VkPipelineLayoutCreateInfo layout_info{};
  layout_info.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
  layout_info.setLayoutCount = 1;
  layout_info.pSetLayouts = &p.set_layout;
  layout_info.pushConstantRangeCount = shader.push_bytes ? 1 : 0;
  layout_info.pPushConstantRanges = &push;
  check(vk.vkCreatePipelineLayout(device_, &layout_info, nullptr, &p.layout),
        "vkCreatePipelineLayout");
  VkShaderModuleCreateInfo module_info{};
  module_info.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
  module_info.codeSize = shader.bytes;
  module_info.pCode = reinterpret_cast<const uint32_t*>(shader.spirv);
  VkShaderModule module = VK_NULL_HANDLE;
  check(vk.vkCreateShaderModule(device_, &module_info, nullptr, &module), "vkCreateShaderModule");
  VkSpecializationMapEntry entry{0, 0, sizeof(uint32_t)};
  VkSpecializationInfo spec{1, &entry, sizeof(uint32_t), &workgroup};
  VkComputePipelineCreateInfo pipeline_info{};
  pipeline_info.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
  pipeline_info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  pipeline_info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  pipeline_info.stage.module = module;
  pipeline_info.stage.pName = "main";
  pipeline_info.stage.pSpecializationInfo = &spec;
  pipeline_info.layout = p.layout;
  const VkResult r =
      vk.vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &pipeline_info, nullptr, &p.pipeline);
  vk.vkDestroyShaderModule(device_, module, nullptr);
  check(r, "vkCreateComputePipelines");
  return pipelines_.emplace(key, p).first->second;
}

void Context::begin_if_needed() {
  if (recording_) {
    // Each op reads what the previous one wrote.
    VkMemoryBarrier barrier{};
    barrier.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                            VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    const VkPipelineStageFlags stages =
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    api_.vkCmdPipelineBarrier(commands_, stages, stages, 0, 1, &barrier, 0, nullptr, 0, nullptr);
    return;
  }
  VkCommandBufferBeginInfo begin{};
  begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(api_.vkBeginCommandBuffer(commands_, &begin), "vkBeginCommandBuffer");
  recording_ = true;
}

void Context::dispatch(const Pipeline& p, const std::vector<const Buffer*>& buffers,
                       const void* push, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z) {
  if (buffers.size() != p.buffers)
    throw std::logic_error("a dispatch binds " + std::to_string(buffers.size()) +
                           " buffers, its shader " + std::to_string(p.buffers));
  if (sets_in_pool_ == kMaxSetsPerBatch) run();  // the pool is reset after each submission
  begin_if_needed();
  VkDescriptorSetAllocateInfo alloc{};
  alloc.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
  alloc.descriptorPool = descriptor_pool_;
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &p.set_layout;
  VkDescriptorSet set = VK_NULL_HANDLE;
  check(api_.vkAllocateDescriptorSets(device_, &alloc, &set), "vkAllocateDescriptorSets");
  ++sets_in_pool_;
  std::vector<VkDescriptorBufferInfo> infos;
  for (const Buffer* b : buffers) infos.push_back({b->handle(), 0, VK_WHOLE_SIZE});
  std::vector<VkWriteDescriptorSet> writes(infos.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
    writes[i].dstSet = set;
    writes[i].dstBinding = static_cast<uint32_t>(i);
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  api_.vkUpdateDescriptorSets(device_, static_cast<uint32_t>(writes.size()), writes.data(), 0,
                              nullptr);
  api_.vkCmdBindPipeline(commands_, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
  api_.vkCmdBindDescriptorSets(commands_, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0,
                               nullptr);
  if (p.push_bytes)
    api_.vkCmdPushConstants(commands_, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p.push_bytes,
                            push);
  api_.vkCmdDispatch(commands_, groups_x, groups_y, groups_z);
}

void Context::copy(const Buffer& from, const Buffer& to, size_t bytes, size_t from_offset,
                   size_t to_offset) {
  begin_if_needed();
  VkBufferCopy region{from_offset, to_offset, bytes};
  api_.vkCmdCopyBuffer(commands_, from.handle(), to.handle(), 1, &region);
}

void Context::run() {
  if (!recording_) return;
  recording_ = false;
  // What the shaders and copies wrote becomes visible to host reads of mapped memory.
  VkMemoryBarrier to_host{};
  to_host.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  to_host.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  api_.vkCmdPipelineBarrier(commands_,
                            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                            VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &to_host, 0, nullptr, 0, nullptr);
  check(api_.vkEndCommandBuffer(commands_), "vkEndCommandBuffer");
  VkSubmitInfo submit{};
  submit.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &commands_;
  check(api_.vkQueueSubmit(queue_, 1, &submit, fence_), "vkQueueSubmit");
  check(api_.vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  api_.vkResetFences(device_, 1, &fence_);
  api_.vkResetCommandBuffer(commands_, 0);
  api_.vkResetDescriptorPool(device_, descriptor_pool_, 0);
  sets_in_pool_ = 0;
}

}  // namespace ember::vulkan
