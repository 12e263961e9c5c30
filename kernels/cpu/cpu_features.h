// Which SIMD instruction sets this CPU has, read once from CPUID (x86) or fixed at compile time
// (ARM), and the kernel level chosen from them.
#pragma once

#include <string>
#include <vector>

namespace ember::cpu {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool avx_vnni = false;  // the VEX-encoded 256-bit VNNI (Alder Lake and later)
  bool neon = false;
};

const CpuFeatures& cpu_features();

// Kernel levels. Scalar runs anywhere; on x86 each level is a superset of the one before;
// Neon is the ARM level.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512Vnni = 2, Neon = 3 };
constexpr int kIsaCount = 4;

Isa best_isa();  // the best level this CPU supports; EMBER_ISA=scalar|avx2 caps it
std::vector<Isa> available_isas();  // every level this CPU can run, scalar first
const char* isa_name(Isa isa);
std::string describe_cpu_features();  // "avx2 fma f16c avx512f ..." for gpu-info and benches

}  // namespace ember::cpu
