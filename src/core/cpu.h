// core/cpu.h — what this CPU can run, detected once at start-up (runtime dispatch uses it).
// defines: CpuFeatures, cpu_features, cpu_description
#pragma once
#include <string>

namespace baleine {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, avx512_vnni = false, avx_vnni = false;
};

const CpuFeatures& cpu_features();
std::string cpu_description();  // model name, cores, ISA summary (printed by benchmarks)

}  // namespace baleine
