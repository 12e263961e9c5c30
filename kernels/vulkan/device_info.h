// What the Vulkan devices of this machine are and can do, for `ember gpu-info` and for choosing a
// device. The Vulkan loader (libvulkan.so.1) is opened at run time, so ember starts and reports
// "no Vulkan" on a machine without it instead of failing to load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ember::vulkan {

struct MemoryHeap {
  uint64_t size = 0;          // bytes
  bool device_local = false;  // VK_MEMORY_HEAP_DEVICE_LOCAL_BIT
};

struct DeviceInfo {
  int index = 0;            // position in vkEnumeratePhysicalDevices (what --device N names)
  std::string name;         // deviceName
  std::string type;         // "discrete", "integrated", "virtual", "cpu" or "other"
  std::string driver;       // driverName and driverInfo (Vulkan 1.2), when the driver says
  std::string api_version;  // "1.3.230"
  uint32_t api = 0;         // the same, as VK_MAKE_API_VERSION packs it
  uint32_t driver_version = 0;
  uint32_t vendor_id = 0, device_id = 0;
  std::vector<MemoryHeap> heaps;
  uint32_t subgroup_size = 0;             // VkPhysicalDeviceSubgroupProperties::subgroupSize
  uint32_t max_shared_memory = 0;         // maxComputeSharedMemorySize, bytes
  uint32_t max_storage_buffer_range = 0;  // maxStorageBufferRange, bytes
  uint32_t max_workgroup_invocations = 0;
  bool storage_16bit = false;  // storageBuffer16BitAccess: fp16 weights and caches in buffers
  bool storage_8bit = false;   // storageBuffer8BitAccess: int8 blocks in buffers
  bool float16 = false;        // shaderFloat16: fp16 arithmetic
  bool int8 = false;           // shaderInt8: int8 arithmetic
  bool is_gpu() const { return type == "discrete" || type == "integrated"; }
};

struct Inventory {
  bool loader = false;  // libvulkan.so.1 could be opened
  std::string error;    // why nothing is listed, when nothing is
  std::vector<DeviceInfo> devices;
};

// Lists every physical device. Never throws: problems are in `error`.
Inventory list_devices();

}  // namespace ember::vulkan
