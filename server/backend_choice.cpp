#include "server/backend_choice.h"

#include <stdexcept>

#include "kernels/cpu/cpu_features.h"

namespace ember::server {
namespace {

std::string describe(const vulkan::DeviceInfo& d) {
  return d.name + " (Vulkan " + d.type + ")";
}
std::string describe(const opencl::DeviceInfo& d) {
  return d.name + " (OpenCL " + d.type + ", " + d.platform + ")";
}

// `backend`'s device from `inventory` (Vulkan's or OpenCL's): the one --device N names, else the
// first GPU, else the first device of any type.
template <class Inventory>
BackendChoice pick(const std::string& backend, const std::string& api, const Inventory& inventory,
                   int device) {
  auto choice = [&](const auto& d, const std::string& reason) {
    return BackendChoice{backend, d.index, describe(d), reason};
  };
  if (inventory.devices.empty())
    throw std::invalid_argument("--backend " + backend + ": no " + api + " device found" +
                                (inventory.error.empty() ? "" : " (" + inventory.error + ")") +
                                "; see ember gpu-info, or use --backend cpu");
  if (device >= 0) {
    for (const auto& d : inventory.devices)
      if (d.index == device) return choice(d, "asked for with --device " + std::to_string(device));
    throw std::invalid_argument("--device " + std::to_string(device) + ": there are " +
                                std::to_string(inventory.devices.size()) + " " + api +
                                " devices (numbered from 0; see ember gpu-info)");
  }
  for (const auto& d : inventory.devices)
    if (d.is_gpu()) return choice(d, "asked for with --backend " + backend + "; the first GPU");
  return choice(inventory.devices.front(),
                "asked for with --backend " + backend + "; no GPU, so the first device");
}

}  // namespace

BackendChoice choose_backend(const std::string& requested, const vulkan::Inventory& vulkan,
                             const opencl::Inventory& opencl, int device) {
  if (requested == "cpu")
    return {"cpu", -1, std::string("CPU, kernel level ") + cpu::isa_name(cpu::best_isa()),
            "asked for with --backend cpu"};
  if (requested == "opencl") return pick("opencl", "OpenCL", opencl, device);
  if (requested == "vulkan" || (requested == "auto" && device >= 0))
    return pick("vulkan", "Vulkan", vulkan, device);
  if (requested != "auto")
    throw std::invalid_argument("--backend must be auto, cpu, vulkan or opencl, not '" + requested +
                                "'");
  for (const auto& d : vulkan.devices)
    if (d.is_gpu()) return {"vulkan", d.index, describe(d), "a GPU with Vulkan is present"};
  // A GPU that only OpenCL reaches (older AMD, Intel and embedded GPUs).
  for (const auto& d : opencl.devices)
    if (d.is_gpu())
      return {"opencl", d.index, describe(d), "a GPU with OpenCL (and no Vulkan) is present"};
  return {"cpu", -1, std::string("CPU, kernel level ") + cpu::isa_name(cpu::best_isa()),
          "no GPU found, so the CPU"};
}

}  // namespace ember::server
