#include "model/backends/make_backend.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "model/backends/cpu_backend.h"
#include "model/backends/opencl_backend.h"
#include "model/backends/vulkan_backend.h"

namespace ember::model {

namespace {

std::unique_ptr<CpuBackend> with_options(std::unique_ptr<CpuBackend> cpu, const BackendSpec& spec) {
  const char* env = std::getenv("EMBER_INTERLEAVE");
  cpu->set_interleave(spec.interleave && !(env && std::string(env) == "0"));
  return cpu;
}

std::unique_ptr<DeviceBackend> open_device(const BackendSpec& spec) {
  if (spec.kind == "vulkan") return std::make_unique<VulkanBackend>(VulkanOptions{spec.device});
  return std::make_unique<OpenClBackend>(OpenClOptions{spec.device});
}

}  // namespace

Backends make_backends(const BackendSpec& spec) {
  Backends b;
  if (spec.kind == "cpu") {
    b.main = with_options(std::make_unique<CpuBackend>(spec.threads), spec);
    return b;
  }
  if (spec.kind != "vulkan" && spec.kind != "opencl")
    throw std::invalid_argument("no backend called '" + spec.kind + "' (cpu, vulkan or opencl)");
  std::unique_ptr<DeviceBackend> device;
  try {
    device = open_device(spec);
  } catch (const std::runtime_error& e) {
    if (!spec.automatic) throw;
    std::fprintf(stderr, "ember: the %s device could not be opened (%s); using the CPU\n",
                 spec.kind.c_str(), e.what());
    b.main = with_options(std::make_unique<CpuBackend>(spec.threads), spec);
    return b;
  }
  b.placement.device_memory = device->limits().memory;
  b.main = std::move(device);
  if (spec.gpu_layers >= 0 || spec.cpu_moe_layers > 0) {
    b.host = with_options(std::make_unique<CpuBackend>(spec.threads), spec);
    b.placement.host = b.host.get();
    b.placement.device_layers = spec.gpu_layers;
    b.placement.host_expert_layers = spec.cpu_moe_layers;
  }
  return b;
}

Backends make_draft_backends(const BackendSpec& spec, const Backends& target,
                             uint64_t target_device_bytes) {
  auto cpu = [](const std::unique_ptr<Backend>& b) { return dynamic_cast<CpuBackend*>(b.get()); };
  Backends b;
  if (CpuBackend* pool = cpu(target.main)) {  // the target runs on the CPU
    b.main = with_options(std::make_unique<CpuBackend>(pool->shared_pool()), spec);
    return b;
  }
  // The target's device, opened again, placed as the target is, in what the target leaves.
  b.placement = target.placement;
  if (b.placement.device_memory > 0)
    b.placement.device_memory -= std::min(b.placement.device_memory - 1, target_device_bytes);
  b.main = open_device(spec);
  if (CpuBackend* host = cpu(target.host)) {
    b.host = with_options(std::make_unique<CpuBackend>(host->shared_pool()), spec);
    b.placement.host = b.host.get();
  }
  return b;
}

}  // namespace ember::model
