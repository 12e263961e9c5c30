// What the OpenCL platforms and devices of this machine are, for `ember gpu-info` and for
// choosing a device. The ICD loader (libOpenCL.so.1) is opened at run time, so ember starts and
// reports "no OpenCL" on a machine without it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ember::opencl {

struct DeviceInfo {
  int index = 0;         // across all platforms, in listing order (what --device N names)
  std::string platform;  // CL_PLATFORM_NAME
  std::string platform_version;
  std::string name;            // CL_DEVICE_NAME
  std::string type;            // "gpu", "cpu", "accelerator" or "other"
  std::string version;         // CL_DEVICE_VERSION ("OpenCL 3.0 PoCL ...")
  std::string c_version;       // CL_DEVICE_OPENCL_C_VERSION
  std::string driver_version;  // CL_DRIVER_VERSION
  std::vector<std::string> extensions;
  uint32_t compute_units = 0;
  uint64_t global_memory = 0;        // bytes
  uint64_t max_allocation = 0;       // CL_DEVICE_MAX_MEM_ALLOC_SIZE, bytes
  uint64_t local_memory = 0;         // bytes
  bool host_unified_memory = false;  // CL_DEVICE_HOST_UNIFIED_MEMORY
  bool has_extension(const std::string& e) const;
  bool is_gpu() const { return type == "gpu"; }
};

struct Inventory {
  bool loader = false;  // libOpenCL.so.1 could be opened
  std::string error;    // why nothing is listed, when nothing is
  std::vector<DeviceInfo> devices;
};

// Lists every device of every platform. Never throws: problems are in `error`.
Inventory list_devices();

}  // namespace ember::opencl
