// Which compute backend `ember serve` (and the other commands) use: what --backend asks for
// (auto, cpu, vulkan, opencl) against the devices this machine has. `auto` takes a discrete or
// integrated GPU when ember has a backend for it, else the CPU. Shared by `serve` and
// `gpu-info`, so what gpu-info says is what serve does.
#pragma once

#include <string>

#include "kernels/opencl/device_info.h"
#include "kernels/vulkan/device_info.h"

namespace ember::server {

// Whether this build can run models on a GPU backend (Vulkan, OpenCL). When it can, `auto`
// discovers devices at start (tens of milliseconds of driver start-up).
constexpr bool kGpuBackendsBuilt = true;

struct BackendChoice {
  std::string backend;    // "cpu", "vulkan" or "opencl"
  int device_index = -1;  // the device of that API as gpu-info numbers it
  std::string device;     // what it runs on, for logs and /health
  std::string reason;     // why, in a sentence
};

// `device` is --device N (−1: not given). `auto` takes the first discrete or integrated Vulkan
// GPU, else the first OpenCL GPU, else the CPU; `vulkan` (and `auto` with a device named) and
// `opencl` take that API's device N, else its first GPU, else its first device of any type
// (lavapipe, Mesa's Vulkan on the CPU, on a machine without a GPU). Throws std::invalid_argument
// for an unknown name, a missing device, or a backend that cannot be used here, with what to do
// instead.
BackendChoice choose_backend(const std::string& requested, const vulkan::Inventory& vulkan,
                             const opencl::Inventory& opencl, int device = -1);

}  // namespace ember::server
