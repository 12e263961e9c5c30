#include "kernels/opencl/context.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ember::opencl {
namespace {

// Where program binaries are kept: EMBER_OPENCL_CACHE_DIR, else $XDG_CACHE_HOME/ember/opencl,
// else ~/.cache/ember/opencl; empty when none can be named.
std::filesystem::path cache_dir() {
  if (const char* d = std::getenv("EMBER_OPENCL_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return std::filesystem::path(x) / "ember" / "opencl";
  if (const char* h = std::getenv("HOME"); h && *h)
    return std::filesystem::path(h) / ".cache" / "ember" / "opencl";
  return {};
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

Buffer::Buffer(Context& context, size_t size) : context_(context), size_(size) {
  cl_int err = CL_SUCCESS;
  mem_ = context.api_.clCreateBuffer(context.context_, CL_MEM_READ_WRITE, size, nullptr, &err);
  check(err, "clCreateBuffer");
}

Buffer::~Buffer() {
  if (mem_) context_.api_.clReleaseMemObject(mem_);
}

std::unique_ptr<Context> Context::open(int index) {
  const Inventory inventory = list_devices();
  if (inventory.devices.empty()) throw std::runtime_error("no OpenCL device: " + inventory.error);
  const DeviceInfo* chosen = nullptr;
  if (index >= 0) {
    for (const DeviceInfo& d : inventory.devices)
      if (d.index == index) chosen = &d;
    if (!chosen)
      throw std::runtime_error("there is no OpenCL device " + std::to_string(index) +
                               " (see ember gpu-info)");
  } else {
    for (const DeviceInfo& d : inventory.devices)
      if (!chosen && d.is_gpu()) chosen = &d;
    if (!chosen) chosen = &inventory.devices.front();
  }
  std::unique_ptr<Context> c(new Context);
  c->api_ = Api::load();
  c->info_ = *chosen;
  const Api& cl = c->api_;
  // The device at the same position of the same walk as list_devices().
  cl_uint n_platforms = 0;
  check(cl.clGetPlatformIDs(0, nullptr, &n_platforms), "clGetPlatformIDs");
  std::vector<cl_platform_id> platforms(n_platforms);
  check(cl.clGetPlatformIDs(n_platforms, platforms.data(), nullptr), "clGetPlatformIDs");
  int position = 0;
  for (cl_platform_id p : platforms) {
    cl_uint n = 0;
    if (cl.clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, nullptr, &n) != CL_SUCCESS || n == 0) continue;
    std::vector<cl_device_id> devices(n);
    cl.clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, n, devices.data(), nullptr);
    for (cl_device_id d : devices)
      if (position++ == chosen->index) c->device_ = d;
  }
  if (!c->device_) throw std::runtime_error("the OpenCL device list changed while opening it");
  cl_int err = CL_SUCCESS;
  c->context_ = cl.clCreateContext(nullptr, 1, &c->device_, nullptr, nullptr, &err);
  check(err, "clCreateContext");
  c->queue_ = cl.clCreateCommandQueue(c->context_, c->device_, 0, &err);  // in order
  check(err, "clCreateCommandQueue");
  cl.clGetDeviceInfo(c->device_, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof c->max_workgroup_,
                     &c->max_workgroup_, nullptr);
  return c;
}

Context::~Context() {
  if (queue_) api_.clFinish(queue_);
  for (auto& [key, k] : kernels_) api_.clReleaseKernel(k);
  for (auto& [key, p] : programs_) api_.clReleaseProgram(p);
  if (queue_) api_.clReleaseCommandQueue(queue_);
  if (context_) api_.clReleaseContext(context_);
}

std::unique_ptr<Buffer> Context::buffer(size_t bytes) {
  return std::unique_ptr<Buffer>(new Buffer(*this, std::max<size_t>(bytes, 4)));
}

void Context::write(Buffer& to, const void* data, size_t bytes, size_t offset) {
  if (offset + bytes > to.size()) throw std::out_of_range("write beyond an OpenCL buffer");
  check(
      api_.clEnqueueWriteBuffer(queue_, to.mem_, CL_TRUE, offset, bytes, data, 0, nullptr, nullptr),
      "clEnqueueWriteBuffer");
}

void Context::read(const Buffer& from, void* data, size_t bytes, size_t offset) {
  if (offset + bytes > from.size()) throw std::out_of_range("read beyond an OpenCL buffer");
  check(api_.clEnqueueReadBuffer(queue_, from.mem_, CL_TRUE, offset, bytes, data, 0, nullptr,
                                 nullptr),
        "clEnqueueReadBuffer");
}

void Context::copy(const Buffer& from, Buffer& to, size_t bytes, size_t from_offset,
                   size_t to_offset) {
  check(api_.clEnqueueCopyBuffer(queue_, from.mem_, to.mem_, from_offset, to_offset, bytes, 0,
                                 nullptr, nullptr),
        "clEnqueueCopyBuffer");
}

cl_program Context::build(const std::string& source, const std::string& options) {
  const Api& cl = api_;
  cl_int err = CL_SUCCESS;
  // The binary cache: keyed by the device, its driver, the options and the source.
  const std::filesystem::path dir = cache_dir();
  std::ostringstream key;
  key << std::hex
      << fnv1a(info_.platform + "\n" + info_.name + "\n" + info_.version + "\n" +
               info_.driver_version + "\n" + options + "\n" + source);
  const std::filesystem::path file = dir.empty() ? dir : dir / (key.str() + ".bin");
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    std::vector<unsigned char> binary((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
    if (!binary.empty()) {
      const unsigned char* data = binary.data();
      const size_t size = binary.size();
      cl_int status = CL_SUCCESS;
      cl_program p =
          cl.clCreateProgramWithBinary(context_, 1, &device_, &size, &data, &status, &err);
      if (err == CL_SUCCESS && status == CL_SUCCESS &&
          cl.clBuildProgram(p, 1, &device_, options.c_str(), nullptr, nullptr) == CL_SUCCESS)
        return p;
      if (p) cl.clReleaseProgram(p);  // stale or foreign: compile from source below
    }
  }
  const char* text = source.c_str();
  const size_t length = source.size();
  cl_program p = cl.clCreateProgramWithSource(context_, 1, &text, &length, &err);
  check(err, "clCreateProgramWithSource");
  if (cl.clBuildProgram(p, 1, &device_, options.c_str(), nullptr, nullptr) != CL_SUCCESS) {
    size_t log_size = 0;
    cl.clGetProgramBuildInfo(p, device_, CL_PROGRAM_BUILD_LOG, 0, nullptr, &log_size);
    std::string log(log_size, '\0');
    cl.clGetProgramBuildInfo(p, device_, CL_PROGRAM_BUILD_LOG, log_size, log.data(), nullptr);
    cl.clReleaseProgram(p);
    throw std::runtime_error("the OpenCL kernels did not build (" + options + "):\n" + log);
  }
  if (!file.empty()) {  // best effort: a read-only cache only costs the next start a compile
    size_t size = 0;
    if (cl.clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, nullptr) ==
            CL_SUCCESS &&
        size > 0) {
      std::vector<unsigned char> binary(size);
      unsigned char* data = binary.data();
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      const std::filesystem::path tmp = file.string() + "." + std::to_string(::getpid());
      if (cl.clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof data, &data, nullptr) == CL_SUCCESS &&
          !ec) {
        std::ofstream(tmp, std::ios::binary)
            .write(reinterpret_cast<const char*>(binary.data()),
                   static_cast<std::streamsize>(binary.size()));
        std::filesystem::rename(tmp, file, ec);
        if (ec) std::filesystem::remove(tmp, ec);
      }
    }
  }
  return p;
}

cl_kernel Context::kernel(const std::string& source, const std::string& options,
                          const std::string& name) {
  cl_program& p = programs_[options + "\n" + source];
  if (!p) p = build(source, options);
  cl_kernel& k = kernels_[{p, name}];
  if (!k) {
    cl_int err = CL_SUCCESS;
    k = api_.clCreateKernel(p, name.c_str(), &err);
    check(err, ("clCreateKernel " + name).c_str());
  }
  return k;
}

void Context::launch(cl_kernel kernel, const std::vector<const Buffer*>& buffers,
                     const void* params, size_t params_bytes, uint32_t groups_x, uint32_t groups_y,
                     uint32_t workgroup) {
  cl_uint arg = 0;
  for (const Buffer* b : buffers)
    check(api_.clSetKernelArg(kernel, arg++, sizeof(cl_mem), &b->mem_), "clSetKernelArg");
  check(api_.clSetKernelArg(kernel, arg, params_bytes, params), "clSetKernelArg");
  const size_t global[2] = {size_t(groups_x) * workgroup, groups_y};
  const size_t local[2] = {workgroup, 1};
  check(api_.clEnqueueNDRangeKernel(queue_, kernel, 2, nullptr, global, local, 0, nullptr, nullptr),
        "clEnqueueNDRangeKernel");
}

void Context::finish() {
  check(api_.clFinish(queue_), "clFinish");
}

}  // namespace ember::opencl
