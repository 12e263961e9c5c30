// The x86 dot products with AVX-512 VNNI's int8 dot product on 256-bit registers.
#define EMBER_DOT_VNNI 1
#include "kernels/cpu/dot_x86.h"

namespace ember::cpu {
VecDotFn avx512vnni_vec_dot(gguf::TensorType type) {
  return x86_vec_dot(type);
}
}  // namespace ember::cpu
