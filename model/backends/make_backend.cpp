#include "model/backends/make_backend.h"

#include <cstdio>
#include <stdexcept>

#include "model/backends/cpu_backend.h"
#include "model/backends/opencl_backend.h"
#include "model/backends/vulkan_backend.h"

namespace ember::model {

Backends make_backends(const BackendSpec& spec) {
  Backends b;
  if (spec.kind == "cpu") {
    b.main = std::make_unique<CpuBackend>(spec.threads);
    return b;
  }
  if (spec.kind != "vulkan" && spec.kind != "opencl")
    throw std::invalid_argument("no backend called '" + spec.kind + "' (cpu, vulkan or opencl)");
  std::unique_ptr<DeviceBackend> device;
  try {
    if (spec.kind == "vulkan")
      device = std::make_unique<VulkanBackend>(VulkanOptions{spec.device});
    else
      device = std::make_unique<OpenClBackend>(OpenClOptions{spec.device});
  } catch (const std::runtime_error& e) {
    if (!spec.automatic) throw;
    std::fprintf(stderr, "ember: the %s device could not be opened (%s); using the CPU\n",
                 spec.kind.c_str(), e.what());
    b.main = std::make_unique<CpuBackend>(spec.threads);
    return b;
  }
  b.placement.device_memory = device->limits().memory;
  b.main = std::move(device);
  if (spec.gpu_layers >= 0 || spec.cpu_moe_layers > 0) {
    b.host = std::make_unique<CpuBackend>(spec.threads);
    b.placement.host = b.host.get();
    b.placement.device_layers = spec.gpu_layers;
    b.placement.host_expert_layers = spec.cpu_moe_layers;
  }
  return b;
}

Backends make_draft_backends(const BackendSpec& spec, const Backends& target) {
  // A CPU backend beside the target's shares its thread pool.
  auto beside = [&](Backend* other) -> std::unique_ptr<Backend> {
    if (auto* cpu = dynamic_cast<CpuBackend*>(other))
      return std::make_unique<CpuBackend>(cpu->shared_pool());
    return nullptr;
  };
  Backends b;
  if ((b.main = beside(target.main.get()))) return b;  // the target runs on the CPU
  b = make_backends(spec);
  if (b.host) {
    b.host = beside(target.host.get());
    b.placement.host = b.host.get();
  }
  return b;
}

}  // namespace ember::model
