// The OpenCL C sources of kernels/opencl/kernels/, embedded at build time (embed_sources.cmake).
#pragma once

namespace ember::opencl::sources {

extern const char* const dequant;  // one dequant16 per block format (-DTYPE_*)
extern const char* const weights;  // mul_mat, mul_mat_id, get_rows (after dequant; -DWG)
extern const char* const ops;      // every other op of the device backend (-DWG, -DATTN_WG)

}  // namespace ember::opencl::sources
