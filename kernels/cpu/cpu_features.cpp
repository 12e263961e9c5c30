#include "kernels/cpu/cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace ember::cpu {
namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  // The OS must save the YMM (and for AVX-512 the ZMM/opmask) registers: XCR0 says so.
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  if (osxsave) __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  bool ymm = (xcr0_lo & 0x6) == 0x6;
  bool zmm = (xcr0_lo & 0xe6) == 0xe6;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = ymm && (b & (1u << 5));
    f.avx512f = zmm && (b & (1u << 16));
    f.avx512bw = zmm && (b & (1u << 30));
    f.avx512vl = zmm && (b & (1u << 31));
    f.avx512vnni = zmm && (c & (1u << 11));
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    f.avx_vnni = ymm && (a & (1u << 4));
    f.avx512bf16 = zmm && (a & (1u << 5));
  }
  f.fma = f.fma && ymm;
  f.f16c = f.f16c && ymm;
#elif defined(__aarch64__)
  f.neon = true;
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

Isa best_isa() {
  const CpuFeatures& f = cpu_features();
  Isa best = Isa::Scalar;
  if (f.neon) best = Isa::Neon;
  if (f.avx2 && f.fma && f.f16c) best = Isa::Avx2;
  if (best == Isa::Avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni)
    best = Isa::Avx512Vnni;
  if (const char* cap = std::getenv("EMBER_ISA")) {
    if (std::strcmp(cap, "scalar") == 0)
      best = Isa::Scalar;
    else if (std::strcmp(cap, "avx2") == 0 && best > Isa::Avx2)
      best = Isa::Avx2;
  }
  return best;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Neon:
      return "neon";
    case Isa::Avx512Vnni:
      return "avx512-vnni";
  }
  return "?";
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out = {Isa::Scalar};
  Isa best = best_isa();
  if (best == Isa::Neon) out.push_back(Isa::Neon);
  if (best == Isa::Avx2 || best == Isa::Avx512Vnni) out.push_back(Isa::Avx2);
  if (best == Isa::Avx512Vnni) out.push_back(Isa::Avx512Vnni);
  return out;
}

std::string describe_cpu_features() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (on) s += (s.empty() ? "" : " ") + std::string(name);
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx_vnni, "avx-vnni");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512bf16, "avx512bf16");
  add(f.neon, "neon");
  return s.empty() ? "none" : s;
}

}  // namespace ember::cpu
