// ops/cpu/quant_avx512_vnni.cpp — integer quantised-linear kernels with AVX512-VNNI: vpdpbusd does the
// u8 × s8 dot product and its accumulation in one instruction, vpdpwssd the scale-weighted int16 sums.
// 256-bit EVEX forms (AVX512VL), same kernel bodies as AVX2 (quant_kernels.inc). Compiled with the AVX-512
// flags plus -mavx512vnni; chosen at run time only when the CPU reports AVX512-VNNI.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/cpu/quant_kernels.h"
#include "ops/quant_blocks.h"

namespace baleine::ops::cpu {
namespace {

inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }
inline __m256i madd_acc(__m256i acc, __m256i p, __m256i w) { return _mm256_dpwssd_epi32(acc, p, w); }

#include "ops/cpu/quant_kernels.inc"

}  // namespace

const QuantKernels kAvx512VnniQuant = {quantize_acts, linear_q8_0, linear_q4_0, linear_q4_k, linear_q6_k};

}  // namespace baleine::ops::cpu
