// Which compute backend `ember serve` (and the other commands) use: what --backend asks for
// (auto, cpu, vulkan, opencl) against the devices this machine has. `auto` takes a discrete or
// integrated GPU when ember has a backend for it, else the CPU. Shared by `serve` and
// `gpu-info`, so what gpu-info says is what serve does.
#pragma once

#include <string>

#include "kernels/opencl/device_info.h"
#include "kernels/vulkan/device_info.h"

namespace ember::server {

// Whether this build can run models on a GPU backend. While it cannot, `auto` is the CPU and
// serve skips device discovery (tens of milliseconds of driver start-up) entirely.
constexpr bool kGpuBackendsBuilt = false;

struct BackendChoice {
  std::string backend;  // "cpu" (the only backend this build runs models on)
  std::string device;   // what it runs on, for logs and /health
  std::string reason;   // why, in a sentence
};

// Throws std::invalid_argument for an unknown name, or for a backend that cannot be used here,
// with what to do instead.
BackendChoice choose_backend(const std::string& requested, const vulkan::Inventory& vulkan,
                             const opencl::Inventory& opencl);

}  // namespace ember::server
