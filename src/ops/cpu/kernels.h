// ops/cpu/kernels.h — the table of single-threaded SIMD kernels one ISA backend provides (AVX2, AVX-512).
// defines: cpu::Kernels, cpu::kAvx2, cpu::kAvx512, cpu::kAttnMaxHeadBlock, cpu::attention_items, cpu::LinearTuning, cpu::linear_tuning
//
// Internal to baleine_ops (tests and benchmarks may include it). dispatch.cpp validates arguments, splits the
// work over the thread pool and calls these on sub-ranges; the kernels never allocate, throw or touch the pool.
//
// Why function pointers and raw loops only: avx2.cpp / avx512.cpp are compiled with ISA flags that the rest
// of the library is not. Anything with external (vague) linkage instantiated inside them — std::max<float>,
// std::vector members, an inline function from a header — could be emitted with AVX-512 instructions and
// then chosen by the linker for baseline code, which would crash on an older CPU. So those files keep all
// their code in an anonymous namespace, use builtins instead of <cmath>/<algorithm>, and export only a
// constant table of pointers. This header therefore holds declarations and `static` helpers only.
#pragma once
#include <cstdint>

#include "ops/ops.h"

namespace baleine::ops::cpu {

struct Kernels {
  // y[m, n] = x[m, :K] · w[n, :K] (+ bias[n]) for m < M and n0 <= n < n1. Rows of x, y, w are ldx, ldy, ldw
  // elements apart. Each output is one f32 FMA chain per SIMD lane over K, lanes summed at the end, so a
  // value does not depend on M, n0, n1 or the tiling: results are identical for any thread split.
  void (*linear_f32)(float* y, int64_t ldy, const float* x, int64_t ldx, const float* w, int64_t ldw,
                     const float* bias, int64_t M, int64_t n0, int64_t n1, int64_t K);
  void (*linear_bf16)(float* y, int64_t ldy, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                      const float* bias, int64_t M, int64_t n0, int64_t n1, int64_t K);
  void (*linear_f16)(float* y, int64_t ldy, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                     const float* bias, int64_t M, int64_t n0, int64_t n1, int64_t K);
  // dst[r, :K] = f32(src[r, :K]) for r < rows (exact widening), feeding OpenBLAS when M is large.
  void (*widen_bf16)(float* dst, int64_t ldd, const uint16_t* src, int64_t lds, int64_t rows, int64_t K);
  void (*widen_f16)(float* dst, int64_t ldd, const uint16_t* src, int64_t lds, int64_t rows, int64_t K);

  // Row-wise ops over `rows` rows (contracts as in ops.h; eps etc. already validated).
  void (*rmsnorm)(float* y, int64_t ldy, const float* x, int64_t ldx, const float* w, int64_t rows, int64_t dim,
                  float eps);
  void (*softmax)(float* x, int64_t ld, int64_t rows, int64_t n);

  // Element-wise over n values; y may alias an input.
  void (*silu)(float* y, const float* x, int64_t n);
  void (*swiglu)(float* y, const float* gate, const float* up, int64_t n);
  void (*add)(float* y, const float* x, int64_t n);
  void (*axpy)(float* y, float a, const float* x, int64_t n);
  // y = e^x with the backend's polynomial (the one softmax, silu and attention use); exposed for tests.
  void (*exp)(float* y, const float* x, int64_t n);

  // Rotates n_heads heads of one token (head h at x + h·head_stride) by the precomputed cos/sin [half].
  void (*rope)(float* x, int64_t n_heads, int64_t head_stride, const float* cos, const float* sin, int64_t half,
               bool interleaved);

  // Attention work items [item0, item1) for blocks of `head_block` (1..kAttnMaxHeadBlock) query heads, see
  // attention_items. scratch: head_block · n_kv floats.
  void (*attention)(float* out, const float* q, const float* k, const float* v, const AttentionArgs& a,
                    int64_t head_block, int64_t item0, int64_t item1, float* scratch);
};

extern const Kernels kAvx2;
extern const Kernels kAvx512;

// Attention is split into items: one query, one kv head and a block of up to head_block query heads of that
// group, which read each key and value row once for the whole block (decode is memory-bound, so this is the
// main saving). Every (query, head) output is computed by the same operation sequence whatever the block
// size or item split, so head_block may depend on the thread count without changing any result.
constexpr int64_t kAttnMaxHeadBlock = 8;
static inline int64_t attention_blocks_per_group(const AttentionArgs& a, int64_t head_block) {
  return (a.n_heads / a.n_kv_heads + head_block - 1) / head_block;
}
static inline int64_t attention_items(const AttentionArgs& a, int64_t head_block) {
  return a.n_q * a.n_kv_heads * attention_blocks_per_group(a, head_block);
}

// Where linear switches from the backend's own register-tiled kernel to OpenBLAS sgemm: with
// M >= sgemm_min_m_* rows of x the weights go through sgemm (bf16/f16 widened to f32 block by block), below
// through the own kernel. One setting per backend (index: int(Backend)); defaults in dispatch.cpp, measured,
// and they depend on whether OpenBLAS runs AVX-512 kernels on this CPU. Tests and benchmarks change them to
// force a path; the choice never depends on the thread count.
struct LinearTuning {
  int64_t sgemm_min_m_f32;
  int64_t sgemm_min_m_half;
  // Block-quantised weights: false = integer kernels on int8-quantised activations (the default), true =
  // weights dequantised to f32 16 rows at a time and fed to the f32 kernel (exact activations, slower).
  bool quant_via_f32 = false;
};
LinearTuning& linear_tuning(Backend b);

}  // namespace baleine::ops::cpu
