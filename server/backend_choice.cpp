#include "server/backend_choice.h"

#include <stdexcept>

#include "kernels/cpu/cpu_features.h"

namespace ember::server {

BackendChoice choose_backend(const std::string& requested, const vulkan::Inventory& vulkan,
                             const opencl::Inventory& opencl) {
  const std::string cpu_device = std::string("CPU, kernel level ") + cpu::isa_name(cpu::best_isa());
  if (requested == "cpu") return {"cpu", cpu_device, "asked for with --backend cpu"};
  if (requested == "vulkan" || requested == "opencl") {
    const bool vk = requested == "vulkan";
    const size_t n = vk ? vulkan.devices.size() : opencl.devices.size();
    throw std::invalid_argument("the " + requested + " backend is not in this build yet (" +
                                (n ? std::to_string(n) + " " + requested + " device(s) found"
                                   : "no " + requested + " device found") +
                                "); use --backend cpu or auto");
  }
  if (requested != "auto")
    throw std::invalid_argument("--backend must be auto, cpu, vulkan or opencl, not '" + requested +
                                "'");
  std::string gpu;
  for (const auto& d : vulkan.devices)
    if (d.is_gpu() && gpu.empty()) gpu = d.name + " (Vulkan)";
  for (const auto& d : opencl.devices)
    if (d.is_gpu() && gpu.empty()) gpu = d.name + " (OpenCL)";
  return {"cpu", cpu_device,
          gpu.empty() ? (kGpuBackendsBuilt ? "no GPU found, so the CPU"
                                           : "this build has no GPU backend yet, so the CPU")
                      : "a GPU is present (" + gpu +
                            "), but this build has no GPU backend yet, so the CPU"};
}

}  // namespace ember::server
