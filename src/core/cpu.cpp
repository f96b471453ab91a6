#include "core/cpu.h"

#include <fmt/format.h>

#include <fstream>
#include <thread>

namespace baleine {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.f16c = __builtin_cpu_supports("f16c");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512dq = __builtin_cpu_supports("avx512dq");
    c.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
    c.avx512_vnni = __builtin_cpu_supports("avx512vnni");
    c.avx_vnni = __builtin_cpu_supports("avxvnni");
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
