#include "kernels/vulkan/device_info.h"

#include <memory>

#include "kernels/vulkan/api.h"

namespace ember::vulkan {
namespace {

std::string version_text(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

const char* type_name(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return "cpu";
    default:
      return "other";
  }
}

}  // namespace

Inventory list_devices() {
  Inventory inv;
  Api vk;
  if (!vk.load_global(inv.error)) return inv;
  inv.loader = true;
  std::unique_ptr<Instance> instance;
  try {
    instance = std::make_unique<Instance>(vk);
  } catch (const std::exception& e) {
    inv.error = e.what();
    return inv;
  }
  uint32_t count = 0;
  if (vk.vkEnumeratePhysicalDevices(instance->get(), &count, nullptr) != VK_SUCCESS) {
    inv.error = "the Vulkan driver cannot list its devices";
    return inv;
  }
  std::vector<VkPhysicalDevice> physical(count);
  vk.vkEnumeratePhysicalDevices(instance->get(), &count, physical.data());
  for (uint32_t i = 0; i < count; ++i) {
    VkPhysicalDeviceDriverProperties driver{};
    driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
    VkPhysicalDeviceSubgroupProperties subgroup{};
    subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    VkPhysicalDeviceProperties2 props{};
    props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
    props.pNext = &subgroup;
    vk.vkGetPhysicalDeviceProperties2(physical[i], &props);
    // Structures of Vulkan 1.2 may only be chained for devices that speak 1.2.
    const bool v12 = props.properties.apiVersion >= VK_API_VERSION_1_2;
    if (v12) {
      subgroup.pNext = &driver;
      vk.vkGetPhysicalDeviceProperties2(physical[i], &props);
    }
    VkPhysicalDevice16BitStorageFeatures storage16{};
    storage16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
    VkPhysicalDevice8BitStorageFeatures storage8{};
    storage8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
    VkPhysicalDeviceShaderFloat16Int8Features f16i8{};
    f16i8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
    if (v12) {
      storage16.pNext = &storage8;
      storage8.pNext = &f16i8;
    }
    VkPhysicalDeviceFeatures2 features{};
    features.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    features.pNext = &storage16;
    vk.vkGetPhysicalDeviceFeatures2(physical[i], &features);
    VkPhysicalDeviceMemoryProperties mem{};
    vk.vkGetPhysicalDeviceMemoryProperties(physical[i], &mem);

    DeviceInfo d;
    const VkPhysicalDeviceProperties& p = props.properties;
    d.index = static_cast<int>(i);
    d.name = p.deviceName;
    d.type = type_name(p.deviceType);
    if (driver.driverName[0])
      d.driver = std::string(driver.driverName) +
                 (driver.driverInfo[0] ? " " + std::string(driver.driverInfo) : "");
    d.api_version = version_text(p.apiVersion);
    d.api = p.apiVersion;
    d.driver_version = p.driverVersion;
    d.vendor_id = p.vendorID;
    d.device_id = p.deviceID;
    for (uint32_t h = 0; h < mem.memoryHeapCount; ++h)
      d.heaps.push_back({mem.memoryHeaps[h].size,
                         (mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});
    d.subgroup_size = subgroup.subgroupSize;
    d.max_shared_memory = p.limits.maxComputeSharedMemorySize;
    d.max_storage_buffer_range = p.limits.maxStorageBufferRange;
    d.max_workgroup_invocations = p.limits.maxComputeWorkGroupInvocations;
    d.storage_16bit = storage16.storageBuffer16BitAccess;
    d.storage_8bit = storage8.storageBuffer8BitAccess;
    d.float16 = f16i8.shaderFloat16;
    d.int8 = f16i8.shaderInt8;
    inv.devices.push_back(std::move(d));
  }
  if (inv.devices.empty()) inv.error = "the Vulkan driver reports no device";
  return inv;
}

}  // namespace ember::vulkan
