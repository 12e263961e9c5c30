#include "kernels/opencl/api.h"

#include <stdexcept>
#include <string>

#include "kernels/dynamic_library.h"

namespace ember::opencl {

Api Api::load() {
  Api api;
  api.library = std::make_shared<DynamicLibrary>(
      std::initializer_list<const char*>{"libOpenCL.so.1", "libOpenCL.so"});
  if (!api.library->valid())
    throw std::runtime_error("no OpenCL ICD loader (libOpenCL.so.1) on this machine");
#define EMBER_CL_LOAD(name)                              \
  api.name = api.library->get<decltype(&::name)>(#name); \
  if (!api.name)                                         \
    throw std::runtime_error("the OpenCL loader lacks " #name " (OpenCL 1.2 is needed)");
  EMBER_CL_FUNCTIONS(EMBER_CL_LOAD)
#undef EMBER_CL_LOAD
  return api;
}

void check(cl_int status, const char* call) {
  if (status != CL_SUCCESS)
    throw std::runtime_error(std::string(call) + " failed with OpenCL error " +
                             std::to_string(status));
}

}  // namespace ember::opencl
