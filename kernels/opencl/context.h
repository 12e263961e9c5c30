// An OpenCL device ready for compute: a context with one in-order command queue, buffers, and
// programs built from the OpenCL C sources embedded at build time (kernels/opencl/kernels/*.cl),
// with their binaries cached on disk so a second start does not compile again. This is the layer
// the device backend of model/ is built on; it knows nothing of models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/opencl/api.h"
#include "kernels/opencl/device_info.h"

namespace ember::opencl {

class Context;

class Buffer {
 public:
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  size_t size() const { return size_; }
  cl_mem handle() const { return mem_; }

 private:
  friend class Context;
  Buffer(Context& context, size_t size);
  Context& context_;
  size_t size_;
  cl_mem mem_ = nullptr;
};

class Context {
 public:
  // Opens OpenCL device `index` as gpu-info numbers them (−1: the first GPU, else the first
  // device). Throws std::runtime_error saying why it cannot.
  static std::unique_ptr<Context> open(int index = -1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& info() const { return info_; }
  size_t max_workgroup() const { return max_workgroup_; }

  std::unique_ptr<Buffer> buffer(size_t bytes);
  // In queue order (blocking: the host data may go once they return).
  void write(Buffer& to, const void* data, size_t bytes, size_t offset);
  void read(const Buffer& from, void* data, size_t bytes, size_t offset);
  void copy(const Buffer& from, Buffer& to, size_t bytes, size_t from_offset, size_t to_offset);

  // Kernel `kernel` of the program built from `source` with compiler `options`, built (or loaded
  // from the binary cache) once and kept. Throws std::runtime_error with the build log.
  cl_kernel kernel(const std::string& source, const std::string& options,
                   const std::string& kernel);
  // Queues `kernel` with `buffers` as arguments 0..n−1 and `params` (a struct by value) as the
  // last, over groups_x × groups_y workgroups of `workgroup` work-items along x.
  void launch(cl_kernel kernel, const std::vector<const Buffer*>& buffers, const void* params,
              size_t params_bytes, uint32_t groups_x, uint32_t groups_y, uint32_t workgroup);
  void finish();

 private:
  friend class Buffer;
  Context() = default;
  cl_program build(const std::string& source, const std::string& options);

  Api api_;
  DeviceInfo info_;
  cl_device_id device_ = nullptr;
  cl_context context_ = nullptr;
  cl_command_queue queue_ = nullptr;
  size_t max_workgroup_ = 1;
  std::map<std::string, cl_program> programs_;  // by options + source
  std::map<std::pair<cl_program, std::string>, cl_kernel> kernels_;
};

}  // namespace ember::opencl
