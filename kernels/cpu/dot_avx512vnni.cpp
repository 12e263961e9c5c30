// The x86 dot products with AVX-512 VNNI's int8 dot product on 256-bit registers.
#define EMBER_DOT_VNNI 1
#include "kernels/cpu/dot_x86.h"

namespace ember::cpu {
void avx512vnni_kernels(gguf::TensorType type, VecDotFn* vec_dot, DotTileFn* dot_tile) {
  X86Kernels k = x86_kernels(type);
  *vec_dot = k.vec_dot, *dot_tile = k.dot_tile;
}
const VectorOps& avx512vnni_vector_ops() {
  return kX86VectorOps;
}
}  // namespace ember::cpu
