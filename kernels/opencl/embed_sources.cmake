# cmake -DDIR=kernels -DOUT=sources.cpp -P embed_sources.cmake: writes every kernels/*.cl as a
# string constant (ember::opencl::sources::NAME) so the binary carries its OpenCL C.
file(GLOB files "${DIR}/*.cl")
list(SORT files)
set(text "// Generated from kernels/opencl/kernels/*.cl by embed_sources.cmake; do not edit.\n#include \"kernels/opencl/sources.h\"\n\nnamespace ember::opencl::sources {\n")
foreach(f ${files})
  get_filename_component(name ${f} NAME_WE)
  file(READ ${f} body)
  string(APPEND text "extern const char* const ${name} = R\"ember_cl(${body})ember_cl\";\n")
endforeach()
string(APPEND text "}  // namespace ember::opencl::sources\n")
file(WRITE "${OUT}" "${text}")
