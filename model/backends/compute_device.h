// What the device backend (device_backend.h) needs of a compute API — buffers, and kernels
// launched by name over buffers and a block of parameters, in order — so that the forward pass's
// device ops are written once for Vulkan (vulkan_backend.h) and OpenCL (opencl_backend.h). The
// kernels of both APIs have the same names, bindings and parameter blocks
// (kernels/vulkan/shaders/*.comp, kernels/opencl/kernels/*.cl).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

namespace ember::model {

// A buffer in a compute device's memory, opaque to the backend.
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  virtual size_t size() const = 0;  // bytes
};

class ComputeDevice {
 public:
  struct Limits {
    std::string name, type;            // for messages, logs and /health ("discrete", "cpu", ...)
    size_t max_buffer_bytes = 0;       // the largest buffer one kernel argument may be
    uint64_t memory = 0;               // device memory for weights and caches, bytes (0: unknown)
    uint32_t workgroup = 0;            // work-items per workgroup of most kernels (a power of two)
    uint32_t attention_workgroup = 0;  // of attention: ≥ 32 (head sizes up to 8 × this)
  };
  virtual ~ComputeDevice() = default;
  virtual const Limits& limits() const = 0;

  // A buffer of `bytes`; host_visible for small per-step data the host writes often.
  virtual std::unique_ptr<DeviceBuffer> buffer(size_t bytes, bool host_visible = false) = 0;
  // Copies host data into a buffer now; no queued work may use those bytes.
  virtual void write(DeviceBuffer& to, const void* data, size_t bytes, size_t offset) = 0;
  // Queued, in order with the launches.
  virtual void copy(const DeviceBuffer& from, DeviceBuffer& to, size_t bytes, size_t from_offset,
                    size_t to_offset) = 0;
  // Queues kernel `name` over `buffers` (its arguments 0..n−1, in order) and `params` (its last
  // argument, a struct of 4-byte fields) on groups_x × groups_y workgroups of `workgroup`
  // work-items along x.
  virtual void launch(const std::string& name, std::initializer_list<const DeviceBuffer*> buffers,
                      const void* params, size_t params_bytes, uint32_t groups_x, uint32_t groups_y,
                      uint32_t workgroup) = 0;
  // Runs everything queued and waits for it.
  virtual void finish() = 0;
  // Copies from a buffer to the host; only after finish() for what queued work wrote.
  virtual void read(const DeviceBuffer& from, void* data, size_t bytes, size_t offset) = 0;
};

}  // namespace ember::model
