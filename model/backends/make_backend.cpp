#include "model/backends/make_backend.h"

#include <cstdio>
#include <stdexcept>

#include "model/backends/cpu_backend.h"
#include "model/backends/vulkan_backend.h"

namespace ember::model {

Backends make_backends(const BackendSpec& spec) {
  Backends b;
  if (spec.kind == "cpu") {
    b.main = std::make_unique<CpuBackend>(spec.threads);
    return b;
  }
  if (spec.kind != "vulkan")
    throw std::invalid_argument("no backend called '" + spec.kind + "' (cpu or vulkan)");
  std::unique_ptr<VulkanBackend> vulkan;
  try {
    vulkan = std::make_unique<VulkanBackend>(VulkanOptions{spec.device});
  } catch (const std::runtime_error& e) {
    if (!spec.automatic) throw;
    std::fprintf(stderr, "ember: the Vulkan device could not be opened (%s); using the CPU\n",
                 e.what());
    b.main = std::make_unique<CpuBackend>(spec.threads);
    return b;
  }
  for (const vulkan::MemoryHeap& heap : vulkan->device().heaps)
    if (heap.device_local)
      b.placement.device_memory = std::max(b.placement.device_memory, heap.size);
  b.main = std::move(vulkan);
  if (spec.gpu_layers >= 0 || spec.cpu_moe_layers > 0) {
    b.host = std::make_unique<CpuBackend>(spec.threads);
    b.placement.host = b.host.get();
    b.placement.device_layers = spec.gpu_layers;
    b.placement.host_expert_layers = spec.cpu_moe_layers;
  }
  return b;
}

}  // namespace ember::model
