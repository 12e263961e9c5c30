#include "model/backends/opencl_backend.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <vector>

#include "kernels/opencl/sources.h"

namespace ember::model {
namespace {

struct OpenClBuffer : DeviceBuffer {
  std::unique_ptr<opencl::Buffer> buffer;
  explicit OpenClBuffer(std::unique_ptr<opencl::Buffer> b) : buffer(std::move(b)) {}
  size_t size() const override { return buffer->size(); }
};

opencl::Buffer& cl(const DeviceBuffer& b) {
  return *static_cast<const OpenClBuffer&>(b).buffer;
}

}  // namespace

OpenClDevice::OpenClDevice(const OpenClOptions& options)
    : ctx_(opencl::Context::open(options.device)) {
  const opencl::DeviceInfo& info = ctx_->info();
  limits_.name = info.name;
  limits_.type = info.type;
  limits_.max_buffer_bytes = info.max_allocation;
  limits_.memory = info.global_memory;
  // PoCL runs a work-group's work-items as loops split at every barrier: small work-groups keep
  // the reductions cheap there; GPUs get two wavefronts' worth.
  const uint32_t most = static_cast<uint32_t>(std::min<size_t>(ctx_->max_workgroup(), 256));
  uint32_t w = options.workgroup ? options.workgroup : info.is_gpu() ? 64 : 8;
  w = std::bit_floor(std::clamp<uint32_t>(w, 1, most));
  limits_.workgroup = w;
  limits_.attention_workgroup = std::bit_floor(std::min<uint32_t>(std::max<uint32_t>(w, 32), most));
}

std::unique_ptr<DeviceBuffer> OpenClDevice::buffer(size_t bytes, bool) {
  return std::make_unique<OpenClBuffer>(ctx_->buffer(bytes));
}

void OpenClDevice::write(DeviceBuffer& to, const void* data, size_t bytes, size_t offset) {
  ctx_->write(cl(to), data, bytes, offset);
}

void OpenClDevice::copy(const DeviceBuffer& from, DeviceBuffer& to, size_t bytes,
                        size_t from_offset, size_t to_offset) {
  ctx_->copy(cl(from), cl(to), bytes, from_offset, to_offset);
}

void OpenClDevice::launch(const std::string& name,
                          std::initializer_list<const DeviceBuffer*> buffers, const void* params,
                          size_t params_bytes, uint32_t groups_x, uint32_t groups_y,
                          uint32_t workgroup) {
  cl_kernel& kernel = kernels_[name];
  if (!kernel) kernel = find_kernel(name);
  std::vector<const opencl::Buffer*> bound;
  for (const DeviceBuffer* b : buffers) bound.push_back(&cl(*b));
  ctx_->launch(kernel, bound, params, params_bytes, groups_x, groups_y, workgroup);
}

cl_kernel OpenClDevice::find_kernel(const std::string& name) {
  const std::string common = "-cl-std=CL1.2 -DWG=" + std::to_string(limits_.workgroup) +
                             " -DATTN_WG=" + std::to_string(limits_.attention_workgroup);
  for (const char* prefix : {"mul_mat_id_", "mul_mat_", "get_rows_"}) {
    const std::string p = prefix;
    if (name.compare(0, p.size(), p) != 0) continue;
    std::string format = name.substr(p.size());
    std::transform(format.begin(), format.end(), format.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    return ctx_->kernel(std::string(opencl::sources::dequant) + opencl::sources::weights,
                        common + " -DTYPE_" + format, p.substr(0, p.size() - 1));
  }
  return ctx_->kernel(opencl::sources::ops, common, name);
}

void OpenClDevice::read(const DeviceBuffer& from, void* data, size_t bytes, size_t offset) {
  ctx_->read(cl(from), data, bytes, offset);
}

OpenClBackend::OpenClBackend(const OpenClOptions& options)
    : DeviceBackend(std::make_unique<OpenClDevice>(options), options.max_buffer_bytes) {}

const opencl::DeviceInfo& OpenClBackend::device() const {
  return static_cast<OpenClDevice&>(compute_device()).info();
}

}  // namespace ember::model
