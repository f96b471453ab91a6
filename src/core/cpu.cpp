#include "core/cpu.h"

#include <fmt/format.h>

#include <cpuid.h>

#include <fstream>
#include <thread>

namespace baleine {

namespace {
// Bits __builtin_cpu_supports does not name on every compiler (clang 14 knows neither "f16c" nor "avxvnni").
bool cpuid_bit(unsigned leaf, unsigned subleaf, int reg, int bit) {
  unsigned r[4] = {0, 0, 0, 0};
  if (!__get_cpuid_count(leaf, subleaf, &r[0], &r[1], &r[2], &r[3])) return false;
  return (r[reg] >> bit) & 1u;
}
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.f16c = c.avx2 && cpuid_bit(1, 0, 2, 29);  // CPUID.1:ECX.F16C (needs the AVX state the OS enabled for AVX2)
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512dq = __builtin_cpu_supports("avx512dq");
    c.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
    c.avx512_vnni = __builtin_cpu_supports("avx512vnni");
    c.avx_vnni = c.avx2 && cpuid_bit(7, 1, 0, 4);  // CPUID.(7,1):EAX.AVX-VNNI
    return c;
  }();
  return f;
}

std::string cpu_description() {
  std::string model = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) model = line.substr(p + 2);
      break;
    }
  }
  const CpuFeatures& f = cpu_features();
  std::string isa;
  if (f.avx512f) isa += "AVX-512 ";
  if (f.avx512_bf16) isa += "AVX512-BF16 ";
  if (f.avx512_vnni) isa += "AVX512-VNNI ";
  if (f.avx2) isa += "AVX2 ";
  if (f.fma) isa += "FMA ";
  return fmt::format("{} | {} hardware threads | {}", model, std::thread::hardware_concurrency(), isa);
}

}  // namespace baleine
