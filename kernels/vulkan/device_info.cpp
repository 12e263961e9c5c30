#include "kernels/vulkan/device_info.h"

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include "kernels/dynamic_library.h"

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
  const DynamicLibrary lib({"libvulkan.so.1", "libvulkan.so"});
  if (!lib.valid()) {
    inv.error = "no Vulkan loader (libvulkan.so.1) on this machine";
    return inv;
  }
  inv.loader = true;
  auto get_proc = lib.get<PFN_vkGetInstanceProcAddr>("vkGetInstanceProcAddr");
  if (!get_proc) {
    inv.error = "libvulkan.so.1 has no vkGetInstanceProcAddr";
    return inv;
  }
  auto create_instance =
      reinterpret_cast<PFN_vkCreateInstance>(get_proc(nullptr, "vkCreateInstance"));
  auto instance_version = reinterpret_cast<PFN_vkEnumerateInstanceVersion>(
      get_proc(nullptr, "vkEnumerateInstanceVersion"));
  uint32_t api = VK_API_VERSION_1_0;
  if (instance_version) instance_version(&api);
  if (api < VK_API_VERSION_1_1) {
    inv.error = "the Vulkan loader supports only Vulkan 1.0; ember needs 1.1";
    return inv;
  }
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "ember";
  app.apiVersion = VK_API_VERSION_1_2;
  VkInstanceCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  info.pApplicationInfo = &app;
  VkInstance instance = VK_NULL_HANDLE;
  if (!create_instance || create_instance(&info, nullptr, &instance) != VK_SUCCESS) {
    inv.error = "no Vulkan driver answered (vkCreateInstance failed; is a driver installed?)";
    return inv;
  }
  auto load = [&](const char* name) { return get_proc(instance, name); };
  struct InstanceGuard {
    VkInstance instance;
    PFN_vkDestroyInstance destroy;
    ~InstanceGuard() {
      if (destroy) destroy(instance, nullptr);
    }
  } guard{instance, reinterpret_cast<PFN_vkDestroyInstance>(load("vkDestroyInstance"))};
  auto enumerate =
      reinterpret_cast<PFN_vkEnumeratePhysicalDevices>(load("vkEnumeratePhysicalDevices"));
  auto properties2 =
      reinterpret_cast<PFN_vkGetPhysicalDeviceProperties2>(load("vkGetPhysicalDeviceProperties2"));
  auto features2 =
      reinterpret_cast<PFN_vkGetPhysicalDeviceFeatures2>(load("vkGetPhysicalDeviceFeatures2"));
  auto memory = reinterpret_cast<PFN_vkGetPhysicalDeviceMemoryProperties>(
      load("vkGetPhysicalDeviceMemoryProperties"));
  uint32_t count = 0;
  if (!enumerate || !properties2 || !features2 || !memory ||
      enumerate(instance, &count, nullptr) != VK_SUCCESS) {
    inv.error = "the Vulkan driver cannot list its devices";
    return inv;
  }
  std::vector<VkPhysicalDevice> physical(count);
  enumerate(instance, &count, physical.data());
  for (uint32_t i = 0; i < count; ++i) {
    VkPhysicalDeviceDriverProperties driver{};
    driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
    VkPhysicalDeviceSubgroupProperties subgroup{};
    subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    VkPhysicalDeviceProperties2 props{};
    props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
    props.pNext = &subgroup;
    properties2(physical[i], &props);
    // Structures of Vulkan 1.2 may only be chained for devices that speak 1.2.
    const bool v12 = props.properties.apiVersion >= VK_API_VERSION_1_2;
    if (v12) {
      subgroup.pNext = &driver;
      properties2(physical[i], &props);
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
    features2(physical[i], &features);
    VkPhysicalDeviceMemoryProperties mem{};
    memory(physical[i], &mem);

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
