// ops/cpu/quant_avx2.cpp — integer quantised-linear kernels for AVX2 (also used by the AVX-512 backend on CPUs
// without AVX512-VNNI). Compiled with -mavx2 -mfma -mf16c; only kAvx2Quant leaves this file (see kernels.h).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/cpu/quant_kernels.h"
#include "ops/quant_blocks.h"

namespace baleine::ops::cpu {
namespace {

// u8 × s8 pairs summed to int16 (no saturation for the operands used here), then pairs of int16 to int32.
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
inline __m256i madd_acc(__m256i acc, __m256i p, __m256i w) { return _mm256_add_epi32(acc, _mm256_madd_epi16(p, w)); }

#include "ops/cpu/quant_kernels.inc"

}  // namespace

const QuantKernels kAvx2Quant = {quantize_acts, nullptr, linear_q8_0, linear_q4_0, linear_q4_k, linear_q6_k};

}  // namespace baleine::ops::cpu
