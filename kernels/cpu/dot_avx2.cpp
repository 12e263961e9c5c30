// The x86 dot products for AVX2 + FMA + F16C (built with those flags only).
#define EMBER_DOT_VNNI 0
#include "kernels/cpu/dot_x86.h"

namespace ember::cpu {
VecDotFn avx2_vec_dot(gguf::TensorType type) {
  return x86_vec_dot(type);
}
}  // namespace ember::cpu
