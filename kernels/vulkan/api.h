// The Vulkan functions ember calls, loaded at run time from the loader (libvulkan.so.1) through
// vkGetInstanceProcAddr / vkGetDeviceProcAddr, so the binary does not link Vulkan and runs on
// machines without it. One X-macro list per level names every function once.
#pragma once

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <memory>
#include <string>

namespace ember {
class DynamicLibrary;
}

namespace ember::vulkan {

// Global functions (no instance yet).
#define EMBER_VK_GLOBAL(X) \
  X(vkCreateInstance)      \
  X(vkEnumerateInstanceVersion)

// Instance functions.
#define EMBER_VK_INSTANCE(X)                  \
  X(vkDestroyInstance)                        \
  X(vkEnumeratePhysicalDevices)               \
  X(vkGetPhysicalDeviceProperties2)           \
  X(vkGetPhysicalDeviceFeatures2)             \
  X(vkGetPhysicalDeviceMemoryProperties)      \
  X(vkGetPhysicalDeviceQueueFamilyProperties) \
  X(vkCreateDevice)                           \
  X(vkGetDeviceProcAddr)

// Device functions.
#define EMBER_VK_DEVICE(X)          \
  X(vkDestroyDevice)                \
  X(vkGetDeviceQueue)               \
  X(vkCreateBuffer)                 \
  X(vkDestroyBuffer)                \
  X(vkGetBufferMemoryRequirements)  \
  X(vkAllocateMemory)               \
  X(vkFreeMemory)                   \
  X(vkBindBufferMemory)             \
  X(vkMapMemory)                    \
  X(vkUnmapMemory)                  \
  X(vkFlushMappedMemoryRanges)      \
  X(vkInvalidateMappedMemoryRanges) \
  X(vkCreateShaderModule)           \
  X(vkDestroyShaderModule)          \
  X(vkCreateDescriptorSetLayout)    \
  X(vkDestroyDescriptorSetLayout)   \
  X(vkCreatePipelineLayout)         \
  X(vkDestroyPipelineLayout)        \
  X(vkCreateComputePipelines)       \
  X(vkDestroyPipeline)              \
  X(vkCreateDescriptorPool)         \
  X(vkDestroyDescriptorPool)        \
  X(vkResetDescriptorPool)          \
  X(vkAllocateDescriptorSets)       \
  X(vkUpdateDescriptorSets)         \
  X(vkCreateCommandPool)            \
  X(vkDestroyCommandPool)           \
  X(vkAllocateCommandBuffers)       \
  X(vkResetCommandBuffer)           \
  X(vkBeginCommandBuffer)           \
  X(vkEndCommandBuffer)             \
  X(vkCmdBindPipeline)              \
  X(vkCmdBindDescriptorSets)        \
  X(vkCmdPushConstants)             \
  X(vkCmdDispatch)                  \
  X(vkCmdPipelineBarrier)           \
  X(vkCmdCopyBuffer)                \
  X(vkQueueSubmit)                  \
  X(vkCreateFence)                  \
  X(vkDestroyFence)                 \
  X(vkWaitForFences)                \
  X(vkResetFences)

#define EMBER_VK_MEMBER(name) PFN_##name name = nullptr;

// The loaded entry points. load_global() first; load_instance() after vkCreateInstance;
// load_device() after vkCreateDevice. Each throws std::runtime_error naming a missing function.
struct Api {
  EMBER_VK_GLOBAL(EMBER_VK_MEMBER)
  EMBER_VK_INSTANCE(EMBER_VK_MEMBER)
  EMBER_VK_DEVICE(EMBER_VK_MEMBER)
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;

  // Opens the loader; false (and `error`) when there is none.
  bool load_global(std::string& error);
  void load_instance(VkInstance instance);
  void load_device(VkDevice device);

 private:
  std::shared_ptr<DynamicLibrary> library_;
};

#undef EMBER_VK_MEMBER

// A Vulkan instance for ember (API 1.2 asked for) with `api`'s instance functions loaded, destroyed
// with this object. `api.load_global()` must have succeeded. Throws std::runtime_error.
class Instance {
 public:
  explicit Instance(Api& api);
  ~Instance();
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;
  VkInstance get() const { return instance_; }

 private:
  Api& api_;
  VkInstance instance_ = VK_NULL_HANDLE;
};

// Throws std::runtime_error("WHAT failed: VK_ERROR_...") unless `result` is VK_SUCCESS.
void check(VkResult result, const std::string& what);

}  // namespace ember::vulkan
