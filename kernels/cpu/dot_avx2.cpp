// The x86 dot products for AVX2 + FMA + F16C (built with those flags only).
#define EMBER_DOT_VNNI 0
#include "kernels/cpu/dot_x86.h"

namespace ember::cpu {
void avx2_kernels(gguf::TensorType type, VecDotFn* vec_dot, DotTileFn* dot_tile) {
  X86Kernels k = x86_kernels(type);
  *vec_dot = k.vec_dot, *dot_tile = k.dot_tile;
}
const VectorOps& avx2_vector_ops() {
  return kX86VectorOps;
}
}  // namespace ember::cpu
