#include "server/backend_choice.h"

#include <stdexcept>

#include "kernels/cpu/cpu_features.h"

namespace ember::server {

BackendChoice choose_backend(const std::string& requested, const vulkan::Inventory& vulkan,
                             const opencl::Inventory& opencl, int device) {
  const std::string cpu_device = std::string("CPU, kernel level ") + cpu::isa_name(cpu::best_isa());
  auto vulkan_choice = [&](const vulkan::DeviceInfo& d, const std::string& reason) {
    return BackendChoice{"vulkan", d.index, d.name + " (Vulkan " + d.type + ")", reason};
  };
  if (requested == "cpu") return {"cpu", -1, cpu_device, "asked for with --backend cpu"};
  if (requested == "opencl")
    throw std::invalid_argument("the opencl backend is not in this build yet (" +
                                (opencl.devices.empty() ? std::string("no opencl device found")
                                                        : std::to_string(opencl.devices.size()) +
                                                              " opencl device(s) found") +
                                "); use --backend vulkan, cpu or auto");
  if (requested == "vulkan" || (requested == "auto" && device >= 0)) {
    if (vulkan.devices.empty())
      throw std::invalid_argument("--backend vulkan: no Vulkan device found" +
                                  (vulkan.error.empty() ? "" : " (" + vulkan.error + ")") +
                                  "; see ember gpu-info, or use --backend cpu");
    if (device >= 0) {
      for (const auto& d : vulkan.devices)
        if (d.index == device)
          return vulkan_choice(d, "asked for with --device " + std::to_string(device));
      throw std::invalid_argument("--device " + std::to_string(device) + ": there are " +
                                  std::to_string(vulkan.devices.size()) +
                                  " Vulkan devices (numbered from 0; see ember gpu-info)");
    }
    for (const auto& d : vulkan.devices)
      if (d.is_gpu()) return vulkan_choice(d, "asked for with --backend vulkan; the first GPU");
    return vulkan_choice(vulkan.devices.front(),
                         "asked for with --backend vulkan; no GPU, so the first device");
  }
  if (requested != "auto")
    throw std::invalid_argument("--backend must be auto, cpu, vulkan or opencl, not '" + requested +
                                "'");
  for (const auto& d : vulkan.devices)
    if (d.is_gpu()) return vulkan_choice(d, "a GPU with Vulkan is present");
  std::string other;
  for (const auto& d : opencl.devices)
    if (d.is_gpu() && other.empty()) other = d.name + " (OpenCL)";
  return {"cpu", -1, cpu_device,
          other.empty()
              ? "no GPU found, so the CPU"
              : "the only GPU (" + other +
                    ") needs the OpenCL backend, which is not in this build yet, so the CPU"};
}

}  // namespace ember::server
