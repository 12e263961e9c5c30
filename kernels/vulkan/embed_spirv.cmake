# cmake -DIN=X.spv -DOUT=X.cpp -DNAME=x -P embed_spirv.cmake: writes the SPIR-V as a byte array
# (namespace ember::vulkan::spirv: NAME[], NAME_bytes) so the binary carries its shaders.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR bytes "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," values "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n  " values "${values}")
file(WRITE "${OUT}" "// Generated from ${IN} by embed_spirv.cmake; do not edit.\n#include <cstddef>\n\nnamespace ember::vulkan::spirv {\nalignas(4) extern const unsigned char ${NAME}[] = {\n  ${values}\n};\nextern const size_t ${NAME}_bytes = ${bytes};\n}  // namespace ember::vulkan::spirv\n")
