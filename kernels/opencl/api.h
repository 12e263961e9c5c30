// The OpenCL functions ember calls, loaded at run time from the ICD loader (libOpenCL.so.1), so
// the binary does not link OpenCL and runs on machines without it. One X-macro list names every
// function once; their types come from the OpenCL 1.2 headers.
#pragma once

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include <memory>

namespace ember {
class DynamicLibrary;
}

namespace ember::opencl {

#define EMBER_CL_FUNCTIONS(X)  \
  X(clGetPlatformIDs)          \
  X(clGetDeviceIDs)            \
  X(clGetDeviceInfo)           \
  X(clCreateContext)           \
  X(clReleaseContext)          \
  X(clCreateCommandQueue)      \
  X(clReleaseCommandQueue)     \
  X(clCreateBuffer)            \
  X(clReleaseMemObject)        \
  X(clEnqueueWriteBuffer)      \
  X(clEnqueueReadBuffer)       \
  X(clEnqueueCopyBuffer)       \
  X(clCreateProgramWithSource) \
  X(clCreateProgramWithBinary) \
  X(clBuildProgram)            \
  X(clGetProgramBuildInfo)     \
  X(clGetProgramInfo)          \
  X(clReleaseProgram)          \
  X(clCreateKernel)            \
  X(clReleaseKernel)           \
  X(clSetKernelArg)            \
  X(clEnqueueNDRangeKernel)    \
  X(clFinish)

struct Api {
#define EMBER_CL_MEMBER(name) decltype(&::name) name = nullptr;
  EMBER_CL_FUNCTIONS(EMBER_CL_MEMBER)
#undef EMBER_CL_MEMBER
  std::shared_ptr<DynamicLibrary> library;

  // Opens the ICD loader and every function; throws std::runtime_error saying what is missing.
  static Api load();
};

// Throws std::runtime_error naming the call and the OpenCL error code when `status` is not
// CL_SUCCESS.
void check(cl_int status, const char* call);

}  // namespace ember::opencl
