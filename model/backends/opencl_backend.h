// The OpenCL backend: the device backend (device_backend.h) over an OpenCL context
// (kernels/opencl/context.h) and the OpenCL C 1.2 kernels of kernels/opencl/kernels — no half
// arithmetic, sub-groups, work-group collectives or integer dot products, so it runs on any
// OpenCL device, PoCL on the CPU included.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "kernels/opencl/context.h"
#include "model/backends/device_backend.h"

namespace ember::model {

struct OpenClOptions {
  int device = -1;  // as `ember gpu-info` numbers the OpenCL devices (−1: the first GPU, else the
                    // first device)
  size_t max_buffer_bytes = 0;  // the largest weight buffer (0: CL_DEVICE_MAX_MEM_ALLOC_SIZE)
  uint32_t workgroup = 0;       // work-items per work-group (0: chosen for the device)
};

// ComputeDevice over an opencl::Context. Kernel names are the Vulkan shaders': the weight
// kernels "mul_mat_FORMAT", "mul_mat_id_FORMAT" and "get_rows_FORMAT" come from the weight
// program built for that format, the others from the ops program.
class OpenClDevice : public ComputeDevice {
 public:
  // Throws std::runtime_error saying why the device cannot be opened.
  explicit OpenClDevice(const OpenClOptions& options);
  const Limits& limits() const override { return limits_; }
  std::unique_ptr<DeviceBuffer> buffer(size_t bytes, bool host_visible) override;
  void write(DeviceBuffer& to, const void* data, size_t bytes, size_t offset) override;
  void copy(const DeviceBuffer& from, DeviceBuffer& to, size_t bytes, size_t from_offset,
            size_t to_offset) override;
  void launch(const std::string& name, std::initializer_list<const DeviceBuffer*> buffers,
              const void* params, size_t params_bytes, uint32_t groups_x, uint32_t groups_y,
              uint32_t workgroup) override;
  void finish() override { ctx_->finish(); }
  void read(const DeviceBuffer& from, void* data, size_t bytes, size_t offset) override;

  const opencl::DeviceInfo& info() const { return ctx_->info(); }

 private:
  // The kernel of a launch name: from the weight program of its format or the ops program.
  cl_kernel find_kernel(const std::string& name);

  std::unique_ptr<opencl::Context> ctx_;
  Limits limits_;
  // By launch name, so a launch costs one lookup rather than building the program's source and
  // options again (the context keys programs by both).
  std::unordered_map<std::string, cl_kernel> kernels_;
};

class OpenClBackend : public DeviceBackend {
 public:
  // Opens the device. Throws std::runtime_error saying why it cannot.
  explicit OpenClBackend(const OpenClOptions& options = {});
  const opencl::DeviceInfo& device() const;
};

}  // namespace ember::model
