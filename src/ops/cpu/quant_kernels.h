// ops/cpu/quant_kernels.h — the integer dot-product kernels for block-quantised weights (one table per ISA).
// defines: cpu::QuantActs, cpu::QuantKernels, cpu::kAvx2Quant, cpu::kAvx512VnniQuant
//
// Internal to baleine_ops (tests and benchmarks may include it); same rules as kernels.h. The method is
// llama.cpp's: each activation row is quantised to int8 in blocks (one f32 scale per 32 values for Q8_0 / Q4_0
// weights, per 256 for the K-quants, with per-16 sums of the codes for the Q4_K mins and the Q6_K offset), then each weight block is an int8·int8 (or
// u4·int8) dot product in 32-bit integers, scaled by the two block scales into an f32 accumulator. Decode
// (M = 1) streams the weights once; prefill runs up to 4 activation rows per unpacked weight block.
#pragma once
#include <cstddef>
#include <cstdint>

namespace baleine::ops::cpu {

// M activation rows of K values quantised to int8: row m's values at q + m·K, its block scales at
// d + m·(K / block) and (256-blocks) its per-16 sums of q at bsum + m·(K / 16). value ≈ d[block] · q.
// 32-blocks with QuantKernels::pair_acts also carry, per row, s4neg[K/4] (minus the sum of each 4 codes, at
// s4neg + m·(K/4)) and dx16[K/64 · 16] (the scales of blocks 2p and 2p+1, each repeated 8 times, at
// dx16 + m·(K/64)·16): what the 512-bit kernels load directly as accumulator start and scale vector.
struct QuantActs {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int16_t* bsum = nullptr;
  int64_t K = 0;
  const int32_t* s4neg = nullptr;
  const float* dx16 = nullptr;
};

struct QuantKernels {
  // x[M, K] (rows ldx apart) -> q[M, K], d[M, K / block] (block 32 or 256: d = amax / 127, q = round(x / d),
  // ties to even) and, when bsum is set, bsum[M, K / 16] = sums of q over each 16 values.
  void (*quantize_acts)(int block, const float* x, int64_t ldx, int64_t M, int64_t K, int8_t* q, float* d,
                        int16_t* bsum);
  // Fills s4neg and dx16 of 32-block activations (see QuantActs) from q and d; null when not needed.
  void (*pair_acts)(const int8_t* q, const float* d, int64_t M, int64_t K, int32_t* s4neg, float* dx16);
  // y[m, n] = Σ_k x̂[m, k] · ŵ[n, k] (+ bias[n]) for m < M, n0 <= n < n1: weight row n at w + n·row_bytes
  // (whole blocks of the named type), x̂ the quantised activations (32-blocks for Q8_0 / Q4_0, 256 for K-quants).
  // Each output's operation order depends only on K, so results do not depend on the split of [n0, n1).
  void (*linear_q8_0)(float* y, int64_t ldy, const QuantActs& a, int64_t M, const uint8_t* w, size_t row_bytes,
                      const float* bias, int64_t n0, int64_t n1);
  void (*linear_q4_0)(float* y, int64_t ldy, const QuantActs& a, int64_t M, const uint8_t* w, size_t row_bytes,
                      const float* bias, int64_t n0, int64_t n1);
  void (*linear_q4_k)(float* y, int64_t ldy, const QuantActs& a, int64_t M, const uint8_t* w, size_t row_bytes,
                      const float* bias, int64_t n0, int64_t n1);
  void (*linear_q6_k)(float* y, int64_t ldy, const QuantActs& a, int64_t M, const uint8_t* w, size_t row_bytes,
                      const float* bias, int64_t n0, int64_t n1);
};

extern const QuantKernels kAvx2Quant;        // AVX2: vpmaddubsw + vpmaddwd
extern const QuantKernels kAvx512VnniQuant;  // AVX512-VNNI (256-bit EVEX): vpdpbusd, vpdpwssd

}  // namespace baleine::ops::cpu
