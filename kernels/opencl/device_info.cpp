#include "kernels/opencl/device_info.h"

#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>

#include "kernels/dynamic_library.h"

#include <algorithm>
#include <sstream>

namespace ember::opencl {
namespace {

using GetPlatformIDs = cl_int (*)(cl_uint, cl_platform_id*, cl_uint*);
using GetPlatformInfo = cl_int (*)(cl_platform_id, cl_platform_info, size_t, void*, size_t*);
using GetDeviceIDs = cl_int (*)(cl_platform_id, cl_device_type, cl_uint, cl_device_id*, cl_uint*);
using GetDeviceInfo = cl_int (*)(cl_device_id, cl_device_info, size_t, void*, size_t*);

template <typename Fn, typename Handle, typename Param>
std::string text(Fn fn, Handle h, Param p) {
  size_t size = 0;
  if (fn(h, p, 0, nullptr, &size) != CL_SUCCESS || size == 0) return "";
  std::string s(size, '\0');
  if (fn(h, p, size, s.data(), nullptr) != CL_SUCCESS) return "";
  while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
  return s;
}

template <typename T>
T number(GetDeviceInfo fn, cl_device_id d, cl_device_info p) {
  T v{};
  fn(d, p, sizeof v, &v, nullptr);
  return v;
}

}  // namespace

bool DeviceInfo::has_extension(const std::string& e) const {
  return std::find(extensions.begin(), extensions.end(), e) != extensions.end();
}

Inventory list_devices() {
  Inventory inv;
  const DynamicLibrary lib({"libOpenCL.so.1", "libOpenCL.so"});
  if (!lib.valid()) {
    inv.error = "no OpenCL ICD loader (libOpenCL.so.1) on this machine";
    return inv;
  }
  inv.loader = true;
  auto platform_ids = lib.get<GetPlatformIDs>("clGetPlatformIDs");
  auto platform_info = lib.get<GetPlatformInfo>("clGetPlatformInfo");
  auto device_ids = lib.get<GetDeviceIDs>("clGetDeviceIDs");
  auto device_info = lib.get<GetDeviceInfo>("clGetDeviceInfo");
  if (!platform_ids || !platform_info || !device_ids || !device_info) {
    inv.error = "libOpenCL.so.1 lacks the OpenCL 1.2 entry points";
    return inv;
  }
  cl_uint n_platforms = 0;
  if (platform_ids(0, nullptr, &n_platforms) != CL_SUCCESS || n_platforms == 0) {
    inv.error = "no OpenCL platform is installed (no ICD in /etc/OpenCL/vendors)";
    return inv;
  }
  std::vector<cl_platform_id> platforms(n_platforms);
  platform_ids(n_platforms, platforms.data(), nullptr);
  for (cl_platform_id platform : platforms) {
    cl_uint n = 0;
    if (device_ids(platform, CL_DEVICE_TYPE_ALL, 0, nullptr, &n) != CL_SUCCESS || n == 0) continue;
    std::vector<cl_device_id> devices(n);
    device_ids(platform, CL_DEVICE_TYPE_ALL, n, devices.data(), nullptr);
    for (cl_device_id dev : devices) {
      DeviceInfo d;
      d.index = static_cast<int>(inv.devices.size());
      d.platform = text(platform_info, platform, CL_PLATFORM_NAME);
      d.platform_version = text(platform_info, platform, CL_PLATFORM_VERSION);
      d.name = text(device_info, dev, CL_DEVICE_NAME);
      const auto type = number<cl_device_type>(device_info, dev, CL_DEVICE_TYPE);
      d.type = type & CL_DEVICE_TYPE_GPU           ? "gpu"
               : type & CL_DEVICE_TYPE_CPU         ? "cpu"
               : type & CL_DEVICE_TYPE_ACCELERATOR ? "accelerator"
                                                   : "other";
      d.version = text(device_info, dev, CL_DEVICE_VERSION);
      d.c_version = text(device_info, dev, CL_DEVICE_OPENCL_C_VERSION);
      d.driver_version = text(device_info, dev, CL_DRIVER_VERSION);
      std::istringstream ext(text(device_info, dev, CL_DEVICE_EXTENSIONS));
      for (std::string e; ext >> e;) d.extensions.push_back(e);
      d.compute_units = number<cl_uint>(device_info, dev, CL_DEVICE_MAX_COMPUTE_UNITS);
      d.global_memory = number<cl_ulong>(device_info, dev, CL_DEVICE_GLOBAL_MEM_SIZE);
      d.max_allocation = number<cl_ulong>(device_info, dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
      d.local_memory = number<cl_ulong>(device_info, dev, CL_DEVICE_LOCAL_MEM_SIZE);
      d.host_unified_memory = number<cl_bool>(device_info, dev, CL_DEVICE_HOST_UNIFIED_MEMORY);
      inv.devices.push_back(std::move(d));
    }
  }
  if (inv.devices.empty()) inv.error = "the OpenCL platforms report no device";
  return inv;
}

}  // namespace ember::opencl
